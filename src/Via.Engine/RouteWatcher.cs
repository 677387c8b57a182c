using Via.Kernel;
using Via.Kernel.Netlink;
using Via.Mechanisms;
using Via.Planning;

namespace Via.Engine;

/// <summary>
/// Keeps a live route what it was made to be while its program runs (DESIGN.md point 12). The
/// kernel drops a table's routes through IFACE when IFACE goes down, and those whose source address
/// goes away, and does not bring them back; a tunnel that redials is a new interface with a new
/// index; systemd-networkd, NetworkManager or a firewall reload may delete rules they did not make.
/// So a thread of each via that uses the route (and of its reaper) listens to rtnetlink in the
/// route's network namespace and, on a change (gathered for <see cref="Quiet"/>) or every
/// <see cref="Poll"/> anyway, plans the route again for IFACE by name (<see cref="RouteFollow"/>)
/// and puts back what is missing, under via's lock, journal first. Meanwhile the route fails
/// closed: its unreachable defaults and the egress guard stay. Several vias sharing a route
/// each watch it; the lock and the re-read under it make the second one find nothing to do.
/// </summary>
public sealed class RouteWatcher : IDisposable
{
    /// <summary>A check even without an announcement: one lost to a full socket buffer, or a monitor that could not be opened.</summary>
    public static readonly TimeSpan Poll = TimeSpan.FromSeconds(2);

    /// <summary>Announcements come in bursts (a link going up brings its addresses and routes): wait for this much quiet.</summary>
    public static readonly TimeSpan Quiet = TimeSpan.FromMilliseconds(100);

    /// <summary>...but no longer than this after the first one.</summary>
    private static readonly TimeSpan MaxGather = TimeSpan.FromMilliseconds(500);

    private readonly string _id;
    private readonly Action<string> _say;
    private readonly Fault? _fault;
    private readonly CancellationTokenSource _stop = new();
    private Wakeup? _wake; // made when it starts: a watcher never started costs no system call
    private readonly Thread _thread;
    private bool _started;
    private string? _lastProblem;
    private volatile ActiveRoute? _latest;

    /// <summary>The route as this watcher last wrote it to the journal; null if it wrote nothing.</summary>
    public ActiveRoute? Latest => _latest;

    private RouteWatcher(string id, Action<string> say, Fault? fault)
    {
        _id = id;
        _say = say;
        _fault = fault;
        _thread = new Thread(Run) { IsBackground = true, Name = "via watch " + id };
    }

    /// <summary>
    /// How long 'via run' lets its program run before it starts watching the route (see
    /// <see cref="Create"/>): a program that is done by then never costs a thread, a netlink
    /// socket and a look at the host. A change of the host in that time is not missed: the
    /// watcher's first look, when it starts, finds it.
    /// </summary>
    public static readonly TimeSpan Deferral = TimeSpan.FromMilliseconds(50);

    /// <summary>
    /// Starts watching route <paramref name="id"/>; <paramref name="say"/> gets one line per change
    /// of state or failure. <paramref name="fault"/>: the kill points "repair" (after the journal
    /// names old and new, and after the changes) for the crash tests.
    /// </summary>
    public static RouteWatcher Start(string id, Action<string> say, Fault? fault = null)
    {
        var watcher = Create(id, say, fault);
        watcher.Start();
        return watcher;
    }

    /// <summary>A watcher that does nothing until <see cref="Start()"/> (as <see cref="Start(string, Action{string}, Fault?)"/>).</summary>
    public static RouteWatcher Create(string id, Action<string> say, Fault? fault = null) => new(id, say, fault);

    /// <summary>Starts watching, once; later calls do nothing.</summary>
    public void Start()
    {
        if (_started) return;
        _started = true;
        _wake = new Wakeup();
        _thread.Start();
    }

    /// <summary>Stops watching: a repair under way finishes (it holds the lock), a wait for the lock ends. Idempotent.</summary>
    public void Dispose()
    {
        if (_started && !_stop.IsCancellationRequested)
        {
            _stop.Cancel();
            _wake!.Set(); // out of its poll at once, not at the end of the slice
            _thread.Join(TimeSpan.FromSeconds(5));
        }
        _stop.Cancel();
        if (!_thread.IsAlive) _wake?.Dispose();
    }

    private void Run()
    {
        try
        {
            Watch();
        }
        catch (Exception e)
        {
            // A thread's exception would end via, and with it the program's route: say it, and stop watching.
            Problem($"stopped watching route {_id}: {Failure.Describe(e)}; it fails closed if the host changes under it");
        }
    }

    private void Watch()
    {
        ActiveRoute? route = Read();
        if (route is null) return;
        using var host = Host.ForNetwork(route.NetworkNamespace);
        if (host is null) return; // its namespace is gone, and its rules and routes with it
        RtnlMonitor? monitor = null;
        try
        {
            monitor = host.OpenMonitor();
        }
        catch (KernelException e)
        {
            Problem($"cannot watch the network for route {_id} ({e.Message}); checking it every {Poll.TotalSeconds:0} s instead");
        }
        using (monitor)
        {
            var token = _stop.Token;
            // The first look at once: the host may have changed between the route's set-up and now.
            bool first = true;
            while (!token.IsCancellationRequested)
            {
                if (!first && Changed(monitor, _wake, token) is null) return;
                first = false;
                try
                {
                    if (!Check(host, token)) return;
                }
                catch (OperationCanceledException)
                {
                    return;
                }
                catch (Exception e)
                {
                    Problem($"could not repair route {_id}: {Failure.Describe(e)}; it fails closed meanwhile, and via tries again");
                }
            }
        }
    }

    /// <summary>Waits for a change (true) or the poll interval (false), gathering a burst into one; null when stopped.</summary>
    private static bool? Changed(RtnlMonitor? monitor, Wakeup? wake, CancellationToken token)
    {
        var slice = TimeSpan.FromMilliseconds(250);
        for (var waited = TimeSpan.Zero; waited < Poll; waited += slice)
        {
            if (token.IsCancellationRequested) return null;
            if (monitor is null) { token.WaitHandle.WaitOne(slice); continue; }
            if (!monitor.Wait(slice, wake)) continue;
            var gathering = System.Diagnostics.Stopwatch.StartNew();
            while (gathering.Elapsed < MaxGather && monitor.Wait(Quiet, wake)) { }
            return true;
        }
        return false;
    }

    /// <summary>One look at the route; false when there is nothing more to watch (removed, or cut off by 'via down').</summary>
    private bool Check(Host host, CancellationToken token)
    {
        var route = Read();
        if (route is null || route.Down) return false;
        var plan = RouteFollow.Plan(route, HostView.Read(host));
        if (!plan.HasWork(route)) return true;

        using (RouteRegistry.Lock(cancel: token))
        {
            // Again under the lock: another via sharing the route may have repaired it, or removed it.
            route = Read();
            if (route is null || route.Down) return false;
            plan = RouteFollow.Plan(route, HostView.Read(host));
            if (!plan.HasWork(route)) return true;

            // Journal first: until the end, it lists the old and the new, so 'via gc' knows all that may exist.
            List<Mechanisms.Changes.HostChange> both = [.. route.Changes, .. plan.Changes.Where(c => !route.Changes.Contains(c))];
            _latest = route with { Changes = both };
            Journal.Write(_latest);
            _fault?.At("repair");
            var problems = Applier.Reconcile(host, plan.Add, plan.Remove);
            _fault?.At("repair");
            // After a failure the journal keeps naming both, old and new: some of either may exist.
            var after = route with
            {
                Changes = problems.Count == 0 ? plan.Changes : both,
                Key = plan.Key,
                Gateway = plan.Gateway,
                Health = plan.Health,
                Waiting = plan.Waiting,
                Repairs = route.Repairs + (plan.Repairs ? 1 : 0),
            };
            Journal.Write(after);
            _latest = after;
            if (problems.Count > 0) throw new ViaException(string.Join("; ", problems));
            _lastProblem = null;
            if (after.Health != route.Health || after.Waiting != route.Waiting)
                _say(after.Health == RouteHealth.Waiting
                    ? $"route {_id} waits for {route.Device}: {after.Waiting} (its programs' connections fail meanwhile; nothing leaves another way)"
                    : $"route {_id} is up again through {route.Device}");
            else if (plan.Repairs)
                _say($"route {_id}: put back {plan.Add.Count} of its objects that another program or the kernel removed");
        }
        return true;
    }

    /// <summary>
    /// One look at route <paramref name="id"/> now, as its watcher would take it, for a route that no
    /// via watches (a standing route: <c>via apply</c>): what the kernel or another program removed is put
    /// back, under via's lock, journal first. Throws when the host refuses it.
    /// </summary>
    public static void CheckOnce(string id, Action<string> say)
    {
        var watcher = Create(id, say);
        var route = watcher.Read();
        if (route is null) return;
        using var host = Host.ForNetwork(route.NetworkNamespace)
            ?? throw new ViaException($"route {id}: its network namespace {route.NetworkNamespace} was not found");
        watcher.Check(host, CancellationToken.None);
    }

    /// <summary>What a look at the route would do now, in words (null: nothing), without doing it: what <see cref="CheckOnce"/> would repair.</summary>
    public static string? Drift(ActiveRoute route)
    {
        using var host = Host.ForNetwork(route.NetworkNamespace);
        if (host is null) return null;
        var plan = RouteFollow.Plan(route, HostView.Read(host));
        if (!plan.HasWork(route)) return null;
        var what = new List<string>();
        if (plan.Health != route.Health || plan.Waiting != route.Waiting)
            what.Add(plan.Waiting is { } waiting ? $"it waits for {route.Device}: {waiting}" : $"{route.Device} is back");
        if (plan.Add.Count > 0) what.Add($"{plan.Add.Count} of its objects are missing");
        if (plan.Remove.Count > 0) what.Add($"{plan.Remove.Count} of its objects no longer fit {route.Device}");
        return what.Count > 0 ? string.Join("; ", what) : $"its journal is behind {route.Device} as it is now";
    }

    private ActiveRoute? Read()
    {
        try { return Journal.Read(Journal.PathOf(_id)); }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException) { return null; }
    }

    /// <summary>Says a problem once, not every two seconds.</summary>
    private void Problem(string message)
    {
        if (message == _lastProblem) return;
        _lastProblem = message;
        _say(message);
    }
}
