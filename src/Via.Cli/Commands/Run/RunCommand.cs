using System.Runtime.InteropServices;
using Via.Cli.Internal;
using Via.Kernel;
using Via.Kernel.Processes;
using Via.Mechanisms;
using Via.Planning;

namespace Via.Cli.Commands.Run;

/// <summary>'via run': checks what it was given, then opens a <see cref="RouteSession"/>, runs the program on it, and leaves.</summary>
public static class RunCommand
{
    public static int Execute(RunOptions o)
    {
        PhaseTrace.Mark("parse");
        if (o.Route is not null && o.Given?.Where(g => g != "--route").ToList() is { Count: > 0 } given)
            return Say.Error($"--route {o.Route} takes the route from via.conf; {string.Join(", ", given)} cannot be given with it (change the [route {o.Route}] section, or use --dev without --route)");
        if (o.Route is null && o.Device is null)
            return Say.Error("name the way out: --dev IFACE, or --route NAME (a route of via.conf); see 'via run --help'");
        if (o.Command.Length == 0)
            return Say.Error("no command given; usage: via run --dev IFACE [options] -- COMMAND [ARGS...]");
        if (o.Json && !o.DryRun)
            return Say.Error("--json goes with --dry-run (a running program's output is its own)");
        if (!o.DryRun && !Exec.IsRoot)
            return Say.Error("'via run' changes routing rules and cgroups and needs root; run it with sudo (or try --dry-run)");

        // Find the command before touching anything: a typo must not cost a route set-up.
        string? path = Exec.Resolve(o.Command[0], out bool notExecutable);
        if (path is null)
            return notExecutable
                ? Say.Error($"{o.Command[0]}: permission denied (not executable)", ExitCodes.CannotExecute)
                : Say.Error($"{o.Command[0]}: command not found", ExitCodes.NotFound);
        Executable.Inspect(path, out bool isStatic, out bool setId);

        var who = ResolveUser(o.User);
        var program = new ProgramImage(path, isStatic, setId);
        SessionRequest request;
        if (o.Route is { } name)
        {
            // The route is the file's: an option that would say otherwise is refused, not merged.
            var config = ViaConfig.Load();
            var named = config.Route(name) ?? throw new ViaException($"no route '{name}' in via.conf ({config.RouteNames}); add a [route {name}] section, or use --dev");
            request = NamedRoutes.Launch(named, program);
        }
        else
        {
            request = new SessionRequest(new RouteRequest(o.Device!, o.Gateway, o.Source, o.Table, Direct: o.Ip), o.Method, o.Dns, program);
        }
        // --only narrows any route, named or not, to some destinations (part of its key: another route).
        if (o.Only is not null) request = request with { Route = request.Route with { Only = o.Only } };
        var output = new SessionOutput(Say.Note, o.Verbose ? line => Console.Error.WriteLine("via: " + line) : null);

        using var signals = new SignalForwarder();
        RouteSession session;
        try
        {
            if (o.DryRun)
            {
                var preview = RouteSession.Preview(request, Say.Note);
                output.Say($"method {preview.Plan.Mechanism.Name}: {preview.MechanismChosen}");
                output.Say(preview.NumbersChosen);
                if (!o.Json && !o.Verbose) Console.WriteLine("# " + preview.NumbersChosen);
                PlanPrinter.Print(preview.Plan, o.Command, who, o.Json, preview.Dns);
                return ExitCodes.Ok;
            }
            PhaseTrace.Mark("prepare");
            session = RouteSession.Open(request, output, Fault.FromEnvironment());
        }
        catch (PlanException e)
        {
            return Say.Error(e.Message);
        }
        catch (ApplyException e)
        {
            return Say.Error($"could not set up the route: {e.Message}{Hint(e)}");
        }
        catch (KernelException e)
        {
            return Say.Error(e.Message);
        }

        if (session.Dns.Warning is { } warning) Say.Note(warning);
        output.Say("DNS: " + session.Dns.Describe());

        // Interrupted during set-up: the program does not start; the route is left as after any program.
        int status = signals.Received is { } early
            ? ExitCodes.SignalBase + early
            : session.Run(path, o.Command, who, CurrentEnvironment(), pid => signals.Target = pid);
        session.Leave();
        return status;
    }

    private static Dictionary<string, string> CurrentEnvironment()
    {
        var environment = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (System.Collections.DictionaryEntry e in Environment.GetEnvironmentVariables())
            environment[(string)e.Key] = (string?)e.Value ?? "";
        return environment;
    }

    private static string Hint(ApplyException e) => e.InnerException switch
    {
        KernelException { ErrorCode: Errno.EPERM or Errno.EACCES } => "; via needs root (CAP_NET_ADMIN, CAP_SYS_ADMIN, CAP_BPF)",
        KernelException { Operation: var op } when op.StartsWith("bpf(", StringComparison.Ordinal) => "; this kernel may lack cgroup eBPF socket hooks (CONFIG_CGROUP_BPF)",
        _ => "",
    };

    /// <summary>--user, else the user who ran sudo, else whoever we are (root).</summary>
    private static Credentials? ResolveUser(string? user)
    {
        if (user is not null)
            return Credentials.Lookup(user) ?? throw new ViaException($"user '{user}' does not exist; pass a user name or uid of this host to --user");
        if (uint.TryParse(Environment.GetEnvironmentVariable("SUDO_UID"), out uint uid) && uid != 0)
        {
            uint gid = uint.TryParse(Environment.GetEnvironmentVariable("SUDO_GID"), out uint g) ? g : uid;
            return Credentials.ForIds(uid, gid);
        }
        return null; // keep our own identity
    }
}

/// <summary>Forwards SIGINT, SIGTERM and SIGHUP to the program; remembers one that came before it started.</summary>
internal sealed class SignalForwarder : IDisposable
{
    private readonly List<PosixSignalRegistration> _registrations = [];
    private volatile int _target;

    public int Target { get => _target; set => _target = value; }

    public int? Received { get; private set; }

    public SignalForwarder()
    {
        // The program shares via's process group. In a terminal's foreground, Ctrl-C (SIGINT) and a
        // hangup (SIGHUP) already reach the whole group: forwarding them again would deliver them twice.
        bool terminal = Exec.InTerminalForeground;
        foreach (var (signal, number) in new[] { (PosixSignal.SIGINT, 2), (PosixSignal.SIGTERM, 15), (PosixSignal.SIGHUP, 1) })
        {
            bool forward = !(terminal && number != 15);
            _registrations.Add(PosixSignalRegistration.Create(signal, context =>
            {
                context.Cancel = true; // via never dies of these: it forwards them, then cleans up
                int pid = _target;
                if (pid > 0) { if (forward) Exec.Signal(pid, number); }
                else Received ??= number;
            }));
        }
    }

    public void Dispose()
    {
        foreach (var r in _registrations) r.Dispose();
    }
}
