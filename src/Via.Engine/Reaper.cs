using System.Globalization;
using System.Diagnostics;
using Via.Kernel.Processes;
using Via.Mechanisms;

namespace Via.Engine;

/// <summary>
/// A detached process that removes a route once its last process is gone: started when the
/// program exits but left daemonized descendants behind (they stay routed until then), when a
/// route gets its first standing rule, and when a route is made standing ('via up', 'via apply').
/// Meanwhile its watcher keeps the route following IFACE (DESIGN.md point 12), as a program's via would.
/// </summary>
public static class Reaper
{
    public const string Verb = "__reap";

    public static void Start(ActiveRoute route)
    {
        // A route held by standing rules gets a reaper each time a rule is added: one is enough.
        if (Running(route)) return;
        var start = new ProcessStartInfo(Environment.ProcessPath ?? "/proc/self/exe")
        {
            UseShellExecute = false,
            // Not the caller's stdio: a pipe reader of via must see EOF when via exits.
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        start.ArgumentList.Add(Verb);
        start.ArgumentList.Add(route.Id);
        start.ArgumentList.Add(Identity(route));
        using var reaper = Process.Start(start);
        reaper?.StandardInput.Close();
        reaper?.StandardOutput.Close();
        reaper?.StandardError.Close();
    }

    /// <summary>
    /// Which route of that id a reaper is for: when it was made. Route ids come back (a table number
    /// freed is taken again), and a reaper of a route removed a moment ago must neither be taken for
    /// the keeper of the next route of that id nor keep it.
    /// </summary>
    private static string Identity(ActiveRoute route) => route.Created.UtcTicks.ToString(CultureInfo.InvariantCulture);

    /// <summary>Whether a reaper of this state directory already waits for <paramref name="route"/> (this one, not an earlier route of its id).</summary>
    public static bool Running(ActiveRoute route)
    {
        string identity = Identity(route);
        foreach (var dir in Directory.EnumerateDirectories("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(dir), out int pid) || pid == Environment.ProcessId) continue;
            try
            {
                var args = File.ReadAllText(Path.Combine(dir, "cmdline")).Split('\0');
                if (args.Length < 4 || args[1] != Verb || args[2] != route.Id || args[3] != identity) continue;
                string state = File.ReadAllText(Path.Combine(dir, "environ")).Split('\0')
                    .FirstOrDefault(e => e.StartsWith("VIA_STATE_DIR=", StringComparison.Ordinal))?["VIA_STATE_DIR=".Length..] is { Length: > 0 } d ? d : Journal.DefaultStateDirectory;
                if (state == Journal.StateDirectory) return true;
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException) { }
        }
        return false;
    }

    public static int Run(ReadOnlySpan<string> args)
    {
        if (args.Length is not (1 or 2))
        {
            Console.Error.WriteLine("via: usage: via __reap ROUTE-ID [CREATED]");
            return ExitCodes.ViaFailed;
        }
        Exec.NewSession(); // leave via's session: a closing terminal must not take the reaper along
        string id = args[0];
        string? identity = args.Length == 2 ? args[1] : null;
        // The daemons' route keeps following IFACE while they live; the reaper's output goes nowhere.
        using var watcher = RouteWatcher.Start(id, _ => { });
        while (true)
        {
            ActiveRoute route;
            try { route = Journal.Read(Journal.PathOf(id)); }
            // Removed by another via, down or gc; or via's state directory was wiped, and 'via gc' finds the route by its tags.
            catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException) { return ExitCodes.Ok; }
            // Removed, and another route made with its id: not this reaper's.
            if (identity is not null && Identity(route) != identity) return ExitCodes.Ok;
            Teardown.WaitUntilEmpty(route, TimeSpan.FromMilliseconds(100));
            RouteRegistry.Outcome outcome;
            using (RouteRegistry.Lock())
            {
                List<string> problems;
                (outcome, problems) = RouteRegistry.Leave(id, ProcessIdentity.Self);
                // InUse: a via joined meanwhile and will remove the route itself when it leaves.
                if (outcome is not (RouteRegistry.Outcome.ProcessesRemain or RouteRegistry.Outcome.Standing)) return problems.Count == 0 ? ExitCodes.Ok : ExitCodes.ViaFailed;
            }
            // A standing route ('via up', 'via apply') has no program: its reaper is its keeper, and its
            // watcher keeps it following IFACE until 'via down' or 'via apply' takes it away.
            if (outcome == RouteRegistry.Outcome.Standing) WaitWhileStanding(id, identity);
        }
    }

    /// <summary>Polls the journal until the route is no longer standing (or gone, or via's state directory with it).</summary>
    private static void WaitWhileStanding(string id, string? identity)
    {
        while (true)
        {
            try
            {
                var route = Journal.Read(Journal.PathOf(id));
                if (!route.Standing || (identity is not null && Identity(route) != identity)) return;
            }
            catch (Exception e) when (e is IOException or InvalidDataException or UnauthorizedAccessException) { return; }
            Thread.Sleep(StandingPoll);
        }
    }

    /// <summary>How often the keeper of a standing route looks whether it is still standing (its watcher does the rest).</summary>
    private static readonly TimeSpan StandingPoll = TimeSpan.FromMilliseconds(500);
}
