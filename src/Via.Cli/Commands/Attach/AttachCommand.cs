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

    public static Command Create()
    {
        var command = new Command("attach", """
            Route a process that is already running: from now on it and its descendants open their sockets
            through IFACE (IPv4 and IPv6, TCP and UDP, with the kill switch of 'via run'). Connections it
            already has keep their path: they are listed. 'via detach' undoes it; when the attached
            processes have all exited, the route is removed.

              sudo via attach --pid 4242 --dev wg0
              sudo via attach --pid "$(pidof transmission-daemon)" --dev eth1 --json
              sudo via detach --pid 4242
            """) { Pid, Dev, Gateway, Source, Table, Method, Json, Verbose };
        command.SetAction(parse => Run(parse.GetValue(Pid), new RouteRequest(parse.GetValue(Dev) ?? "", parse.GetValue(Gateway), parse.GetValue(Source), parse.GetValue(Table)),
            parse.GetValue(Method) ?? Engine.MechanismChoice.Auto, parse.GetValue(Json), parse.GetValue(Verbose)));
        return command;
    }

    private static int Run(int? pid, RouteRequest route, string method, bool json, bool verbose)
    {
        if (pid is null) return Say.Error("name the process to attach: --pid PID; see 'via attach --help'");
        if (route.Device.Length == 0) return Say.Error("name the interface its traffic leaves through: --dev IFACE; see 'via attach --help'");
        if (!Exec.IsRoot) return Say.Error("'via attach' moves processes between cgroups and changes routing rules: it needs root; run it with sudo");
        var output = Output(verbose);
        var done = Engine.Attachment.AttachPid(pid.Value, route, method, output, Engine.Fault.FromEnvironment());
        if (json)
        {
            WriteJson(w =>
            {
                w.WriteString("route", done.Route.Id);
                w.WriteString("device", done.Route.Device);
                w.WriteNumber("table", done.Route.Table);
                w.WriteNumber("mark", done.Route.Mark);
                w.WriteNumber("pid", pid.Value);
                WritePids(w, "moved", done.Moved);
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
        Console.WriteLine($"attached process {pid}{(others > 0 ? $" and {others} descendant(s)" : "")} to route {done.Route.Id} (dev {done.Route.Device}, table {done.Route.Table}): "
            + "the sockets they open from now on leave through it; 'via detach --pid " + pid + "' undoes it");
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

    private static readonly Option<bool> Json = new("--json") { Description = "Print what was done as one JSON object." };

    private static readonly Option<bool> Verbose = new("--verbose", "-v") { Description = "Print each process moved on stderr." };

    public static Command Create()
    {
        var command = new Command("detach", """
            Undo 'via attach': the process and its descendants go back to the cgroup they came from (or to
            their parent's, if that one is gone), and open their sockets by the default path again. The
            route is removed when nothing is left on it.

              sudo via detach --pid 4242
            """) { Pid, Json, Verbose };
        command.SetAction(parse => Run(parse.GetValue(Pid), parse.GetValue(Json), parse.GetValue(Verbose)));
        return command;
    }

    private static int Run(int? pid, bool json, bool verbose)
    {
        if (pid is null) return Say.Error("name the process to detach: --pid PID; see 'via detach --help'");
        if (!Exec.IsRoot) return Say.Error("'via detach' moves processes between cgroups: it needs root; run it with sudo");
        var done = Engine.Attachment.DetachPid(pid.Value, AttachCommand.Output(verbose));
        if (json)
        {
            AttachCommand.WriteJson(w =>
            {
                w.WriteString("route", done.RouteId);
                w.WriteNumber("pid", pid.Value);
                AttachCommand.WritePids(w, "moved", done.Moved.Select(m => m.Pid));
                w.WriteBoolean("routeRemoved", done.RouteRemoved);
            });
            return Engine.ExitCodes.Ok;
        }
        Console.WriteLine($"detached process {pid}{(done.Moved.Count > 1 ? $" and {done.Moved.Count - 1} descendant(s)" : "")} from route {done.RouteId}"
            + (done.RouteRemoved ? "; the route is removed" : "; the route stays for what else is on it"));
        return Engine.ExitCodes.Ok;
    }
}
