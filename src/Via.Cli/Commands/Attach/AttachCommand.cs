using System.CommandLine;
using System.Net;
using System.Text.Json;
using Via.Cli.Commands.Run;
using Via.Kernel.Processes;
using Via.Planning;

namespace Via.Cli.Commands.Attach;

/// <summary>'via attach --pid PID --dev IFACE': a process that is already running, and its descendants, open their sockets through the route from now on.</summary>
public static class AttachCommand
{
    public static readonly Option<int?> Pid = new("--pid")
    {
        Description = "The running process to route, with its descendants (those it forks later follow by themselves).",
        HelpName = "PID",
        CompletionSources = { ValueKind.Free.Complete },
    };

    public static readonly Option<string?> Cgroup = new("--cgroup")
    {
        Description = "A cgroup v2 to route as a whole, where it is (its processes are not moved): a path under the cgroup2 mount, or relative to it.",
        HelpName = "PATH",
        CompletionSources = { ValueKind.File.Complete },
    };

    public static readonly Option<string?> Unit = new("--unit")
    {
        Description = "A running systemd service to route as a whole, without a restart: its cgroup (found in the cgroup2 hierarchy) is attached.",
        HelpName = "NAME.service",
        CompletionSources = { ValueKind.Free.Complete },
    };

    public static readonly Option<string?> Dev = new("--dev")
    {
        Description = "Interface its new connections leave through, e.g. eth1, wlan0, wg0.",
        HelpName = "IFACE",
        CompletionSources = { ValueKind.Interface.Complete },
    };

    public static readonly Option<bool> Json = new("--json") { Description = "Print what was done as one JSON object." };

    public static readonly Option<bool> Verbose = new("--verbose", "-v") { Description = "Print each change on stderr as it is applied." };

    private static readonly Option<IPAddress?> Gateway = new("--gateway")
    {
        Description = RunCommandDefinition.Gateway.Description,
        CustomParser = RunCommandDefinition.Gateway.CustomParser,
        HelpName = "IP",
    };

    private static readonly Option<IPAddress?> Source = new("--src")
    {
        Description = RunCommandDefinition.Source.Description,
        CustomParser = RunCommandDefinition.Source.CustomParser,
        HelpName = "IP",
    };

    private static readonly Option<uint?> Table = new("--table") { Description = RunCommandDefinition.Table.Description, HelpName = "N" };

    private static readonly Option<string> Method = new("--method")
    {
        Description = $"How its sockets get tagged: only '{Engine.Attachment.Method}' can tag a running process (an eBPF program on a cgroup marks each socket as it is created); auto (default) picks it, or says why it cannot.",
        HelpName = $"auto|{Engine.Attachment.Method}",
        DefaultValueFactory = _ => Engine.MechanismChoice.Auto,
        CompletionSources = { ValueKind.OneOf([Engine.MechanismChoice.Auto, Engine.Attachment.Method]).Complete },
    };

    private static readonly Option<string?> Route = RouteByName.Create("the process or cgroup");

    public static Command Create()
    {
        var command = new Command("attach", """
            Route a process that is already running: from now on it and its descendants open their sockets
            through IFACE (IPv4 and IPv6, TCP and UDP, with the kill switch of 'via run'). Connections it
            already has keep their path: they are listed. 'via detach' undoes it; when the attached
            processes have all exited, the route is removed.

            A systemd service (--unit) or any cgroup (--cgroup) is routed as a whole, where it is, without a
            restart: its processes and their children open their sockets through IFACE until 'via detach',
            or until the cgroup is removed (the service stopped).

              sudo via attach --pid 4242 --dev wg0
              sudo via attach --pid "$(pidof transmission-daemon)" --dev eth1 --json
              sudo via attach --unit syncthing.service --dev wg0
              sudo via attach --cgroup /sys/fs/cgroup/my.slice/job --dev eth1
              sudo via attach --pid 4242 --route work      # [route work] of via.conf
              sudo via detach --pid 4242
            """) { Pid, Cgroup, Unit, Dev, Gateway, Source, Table, Route, Method, Json, Verbose };
        command.SetAction(parse =>
        {
            var target = new Target(parse.GetValue(Pid), parse.GetValue(Cgroup), parse.GetValue(Unit));
            if (parse.GetValue(Route) is not { } name)
                return Run(target, new RouteRequest(parse.GetValue(Dev) ?? "", parse.GetValue(Gateway), parse.GetValue(Source), parse.GetValue(Table)),
                    parse.GetValue(Method) ?? Engine.MechanismChoice.Auto, parse.GetValue(Json), parse.GetValue(Verbose));
            if (RouteByName.Read(parse, name, [Dev, Gateway, Source, Table, Method], out string? error) is not { } named) return Say.Error(error!);
            // The file's method: only cgroup (or auto) can tag what already runs; Attachment says so otherwise.
            return Run(target, named.Request, named.Method, parse.GetValue(Json), parse.GetValue(Verbose));
        });
        return command;
    }

    /// <summary>What to attach or detach: exactly one of a process, a cgroup, a unit.</summary>
    internal sealed record Target(int? Pid, string? Cgroup, string? Unit)
    {
        public string? Unit { get; } = Unit is null ? null : Engine.Attachment.UnitName(Unit);

        public string? Problem(string verb) =>
            new object?[] { Pid, Cgroup, Unit }.Count(v => v is not null) == 1 ? null
            : $"name what to {verb}: one of --pid PID, --cgroup PATH, --unit NAME.service; see 'via {verb} --help'";

        /// <summary>The cgroup of --cgroup or --unit, below the hierarchy's root.</summary>
        public string CgroupPath() => Unit is not null ? Engine.Attachment.UnitCgroup(Unit) : Engine.Attachment.CgroupBelowRoot(Cgroup!);

        public string Describe => Pid is { } pid ? $"process {pid}" : Unit is not null ? $"unit {Unit}" : $"cgroup {Cgroup}";

        public string DetachHint => Pid is { } pid ? $"--pid {pid}" : Unit is not null ? $"--unit {Unit}" : $"--cgroup {Cgroup}";
    }

    private static int Run(Target target, RouteRequest route, string method, bool json, bool verbose)
    {
        if (target.Problem("attach") is { } problem) return Say.Error(problem);
        if (route.Device.Length == 0) return Say.Error("name the interface its traffic leaves through: --dev IFACE (or --route NAME, a route of via.conf); see 'via attach --help'");
        if (!Exec.IsRoot) return Say.Error("'via attach' changes cgroups and routing rules: it needs root; run it with sudo");
        var output = Output(verbose);
        var done = target.Pid is { } pid
            ? Engine.Attachment.AttachPid(pid, route, method, output, Engine.Fault.FromEnvironment())
            : Engine.Attachment.AttachCgroup(target.CgroupPath(), target.Unit, route, method, output, Engine.Fault.FromEnvironment());
        if (json)
        {
            WriteJson(w =>
            {
                w.WriteString("route", done.Route.Id);
                w.WriteString("device", done.Route.Device);
                w.WriteNumber("table", done.Route.Table);
                w.WriteNumber("mark", done.Route.Mark);
                WriteTarget(w, target);
                WritePids(w, target.Pid is null ? "processes" : "moved", done.Moved);
                w.WriteStartArray("kept");
                foreach (var s in done.Kept)
                {
                    w.WriteStartObject();
                    w.WriteNumber("pid", s.Pid);
                    w.WriteString("protocol", s.Protocol);
                    w.WriteString("local", s.Local.ToString());
                    w.WriteString("remote", s.Remote.ToString());
                    w.WriteEndObject();
                }
                w.WriteEndArray();
            });
            return Engine.ExitCodes.Ok;
        }
        int others = done.Moved.Count - 1;
        string what = target.Pid is not null
            ? $"{target.Describe}{(others > 0 ? $" and {others} descendant(s)" : "")}"
            : $"{target.Describe} ({done.Moved.Count} process(es) now)";
        Console.WriteLine($"attached {what} to route {done.Route.Id} (dev {done.Route.Device}, table {done.Route.Table}): "
            + $"the sockets they open from now on leave through it; 'via detach {target.DetachHint}' undoes it");
        if (done.Kept.Count > 0)
            Console.WriteLine($"{done.Kept.Count} connection(s) opened before the attach keep their path: {string.Join(", ", done.Kept)}");
        return Engine.ExitCodes.Ok;
    }

    internal static Engine.SessionOutput Output(bool verbose) =>
        new(Say.Note, verbose ? line => Console.Error.WriteLine("via: " + line) : null);

    internal static void WriteJson(Action<Utf8JsonWriter> body)
    {
        using var stdout = Console.OpenStandardOutput();
        using (var w = new Utf8JsonWriter(stdout, new JsonWriterOptions { Indented = true }))
        {
            w.WriteStartObject();
            body(w);
            w.WriteEndObject();
        }
        stdout.Write("\n"u8);
    }

    internal static void WriteTarget(Utf8JsonWriter w, Target target)
    {
        if (target.Pid is { } pid) w.WriteNumber("pid", pid);
        if (target.Cgroup is not null || target.Unit is not null) w.WriteString("cgroup", target.CgroupPath());
        if (target.Unit is not null) w.WriteString("unit", target.Unit);
    }

    internal static void WritePids(Utf8JsonWriter w, string name, IEnumerable<int> pids)
    {
        w.WriteStartArray(name);
        foreach (int p in pids) w.WriteNumberValue(p);
        w.WriteEndArray();
    }
}

/// <summary>'via detach --pid PID': the process and its descendants on the route go back where they came from.</summary>
public static class DetachCommand
{
    private static readonly Option<int?> Pid = new("--pid")
    {
        Description = "The attached process to take off its route, with its descendants on the same route.",
        HelpName = "PID",
        CompletionSources = { ValueKind.Free.Complete },
    };

    private static readonly Option<string?> Cgroup = new("--cgroup")
    {
        Description = "The attached cgroup to take off its route.",
        HelpName = "PATH",
        CompletionSources = { ValueKind.File.Complete },
    };

    private static readonly Option<string?> Unit = new("--unit")
    {
        Description = "The attached systemd service to take off its route.",
        HelpName = "NAME.service",
        CompletionSources = { ValueKind.Free.Complete },
    };

    private static readonly Option<bool> Json = new("--json") { Description = "Print what was done as one JSON object." };

    private static readonly Option<bool> Verbose = new("--verbose", "-v") { Description = "Print each process moved on stderr." };

    public static Command Create()
    {
        var command = new Command("detach", """
            Undo 'via attach': the process and its descendants go back to the cgroup they came from (or to
            their parent's, if that one is gone), and open their sockets by the default path again. The
            route is removed when nothing is left on it.

              sudo via detach --pid 4242
              sudo via detach --unit syncthing.service
            """) { Pid, Cgroup, Unit, Json, Verbose };
        command.SetAction(parse => Run(new AttachCommand.Target(parse.GetValue(Pid), parse.GetValue(Cgroup), parse.GetValue(Unit)), parse.GetValue(Json), parse.GetValue(Verbose)));
        return command;
    }

    private static int Run(AttachCommand.Target target, bool json, bool verbose)
    {
        if (target.Problem("detach") is { } problem) return Say.Error(problem);
        if (!Exec.IsRoot) return Say.Error("'via detach' changes cgroups: it needs root; run it with sudo");
        var output = AttachCommand.Output(verbose);
        var done = target.Pid is { } pid
            ? Engine.Attachment.DetachPid(pid, output)
            : Engine.Attachment.DetachCgroup(target.CgroupPath(), target.Unit, output);
        if (json)
        {
            AttachCommand.WriteJson(w =>
            {
                w.WriteString("route", done.RouteId);
                AttachCommand.WriteTarget(w, target);
                AttachCommand.WritePids(w, target.Pid is null ? "processes" : "moved", done.Moved.Select(m => m.Pid));
                w.WriteBoolean("routeRemoved", done.RouteRemoved);
            });
            return Engine.ExitCodes.Ok;
        }
        string what = target.Pid is not null && done.Moved.Count > 1 ? $"{target.Describe} and {done.Moved.Count - 1} descendant(s)" : target.Describe;
        Console.WriteLine($"detached {what} from route {done.RouteId}"
            + (done.RouteRemoved ? "; the route is removed" : "; the route stays for what else is on it"));
        return Engine.ExitCodes.Ok;
    }
}
