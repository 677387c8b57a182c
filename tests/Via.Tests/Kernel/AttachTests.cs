using System.Diagnostics;
using System.Text.Json;
using Via.Cli.Commands.Demo;
using Via.Kernel.Cgroups;
using Xunit.Abstractions;

namespace Via.Tests.Kernel;

/// <summary>
/// 'via attach --pid' and 'via detach --pid' on a real running program in the topology's host
/// namespace: its new connections switch to the route, the ones it had keep their path, and the
/// route goes when it is detached or exits.
/// </summary>
public sealed class AttachTests(TopologyFixture<AttachTests> fixture, ITestOutputHelper output) : IClassFixture<TopologyFixture<AttachTests>>
{
    private Topology T => fixture.Topology;

    /// <summary>
    /// A long-lived client: one TCP connection to the server opened at once (kept open by sending a
    /// header line now and then: the server gives up on a silent one), a child sleeping, then one
    /// command a line on stdin: 'old' finishes the first request, 'new' asks on a new connection,
    /// 'child' forks a child that asks.
    /// </summary>
    private const string Client = """
        import os, socket, subprocess, sys, threading, time
        def ask():
            s = socket.create_connection(('198.51.100.1', 8080), timeout=5)
            s.sendall(b'GET / HTTP/1.0\r\n\r\n')
            return s.makefile().read().split('\n')[-2]
        old = socket.create_connection(('198.51.100.1', 8080), timeout=5)
        old.sendall(b'GET / HTTP/1.0\r\n')
        lock = threading.Lock()
        done = [False]
        def keep():
            while True:
                with lock:
                    if done[0]: return
                    old.sendall(b'X-Keep: 1\r\n')
                time.sleep(0.3)
        threading.Thread(target=keep, daemon=True).start()
        sleeper = subprocess.Popen(['sleep', '600'])
        print('ready', old.getsockname()[1], sleeper.pid, flush=True)
        for line in sys.stdin:
            cmd = line.strip()
            if cmd == 'old':
                with lock:
                    done[0] = True
                    old.sendall(b'\r\n')
                print('old', old.makefile().read().split('\n')[-2], flush=True)
            elif cmd == 'new':
                print('new', ask(), flush=True)
            elif cmd == 'child':
                pid = os.fork()
                if pid == 0:
                    print('child', ask(), flush=True)
                    os._exit(0)
                os.waitpid(pid, 0)
        sleeper.kill()
        """;

    private sealed class Program : IDisposable
    {
        public Process Process { get; }
        public int LocalPort { get; }
        public int Child { get; }

        public Program(Topology t)
        {
            var start = new ProcessStartInfo("ip") { RedirectStandardOutput = true, RedirectStandardInput = true, UseShellExecute = false };
            foreach (var a in new[] { "netns", "exec", t.Host, Clients.Python, "-c", Client }) start.ArgumentList.Add(a);
            Process = Process.Start(start)!;
            var ready = Process.StandardOutput.ReadLine()!.Split(' ');
            Assert.Equal("ready", ready[0]);
            LocalPort = int.Parse(ready[1], System.Globalization.CultureInfo.InvariantCulture);
            Child = int.Parse(ready[2], System.Globalization.CultureInfo.InvariantCulture);
        }

        public int Pid => Process.Id;

        public string Ask(string command)
        {
            Process.StandardInput.WriteLine(command);
            Process.StandardInput.Flush();
            return Process.StandardOutput.ReadLine() ?? "(the client exited)";
        }

        public void Dispose()
        {
            if (!Process.HasExited) Process.Kill(entireProcessTree: true);
            Process.WaitForExit(10000);
            try { Process.Kill(entireProcessTree: true); } catch (InvalidOperationException) { }
            Process.Dispose();
        }
    }

    private static string CgroupOf(int pid) =>
        File.ReadLines($"/proc/{pid}/cgroup").First(l => l.StartsWith("0::", StringComparison.Ordinal))[3..];

    [RootFact]
    public void An_attached_process_opens_new_connections_through_the_route_and_keeps_its_old_ones()
    {
        var before = HostSnapshot.Take(T);
        using var program = new Program(T);
        string home = CgroupOf(program.Pid);
        var attach = Via.Run(T, "attach", "--pid", $"{program.Pid}", "--dev", "up2");
        output.WriteLine(attach.Out + attach.Err);
        Assert.Equal(0, attach.Code);
        // The connection it had is listed as keeping its path.
        Assert.Contains("1 connection(s) opened before the attach keep their path", attach.Out);
        Assert.Contains($"10.1.0.2:{program.LocalPort} -> 198.51.100.1:8080", attach.Out);
        string id = Assert.Single(Via.Routes(T)).GetProperty("id").GetString()!;
        // The process and the child it had are in the route's cgroup; ls shows it attached.
        Assert.EndsWith("/" + id, CgroupOf(program.Pid));
        Assert.EndsWith("/" + id, CgroupOf(program.Child));
        var ls = Via.Run(T, "ls");
        Assert.Contains($"{id}: attached pid {program.Pid} (from {home})", ls.Out);

        Assert.Equal("new isp2 10.2.0.2", program.Ask("new"));
        Assert.Equal("child isp2 10.2.0.2", program.Ask("child"));
        Assert.Equal("old isp1 10.1.0.2", program.Ask("old"));

        var detach = Via.Run(T, "detach", "--pid", $"{program.Pid}");
        output.WriteLine(detach.Out + detach.Err);
        Assert.Equal(0, detach.Code);
        Assert.Contains("the route is removed", detach.Out);
        Assert.Equal(home, CgroupOf(program.Pid));
        Assert.Equal(home, CgroupOf(program.Child));
        Assert.Equal("new isp1 10.1.0.2", program.Ask("new"));
        HostSnapshot.AssertUnchanged(before, T);
    }

    [RootFact]
    public void A_process_that_exits_while_attached_leaves_nothing()
    {
        var before = HostSnapshot.Take(T);
        using var program = new Program(T);
        var attach = Via.Run(T, "attach", "--pid", $"{program.Pid}", "--dev", "up2", "--json");
        output.WriteLine(attach.Out + attach.Err);
        Assert.Equal(0, attach.Code);
        using (var doc = JsonDocument.Parse(attach.Out))
        {
            var o = doc.RootElement;
            Assert.Equal("up2", o.GetProperty("device").GetString());
            Assert.Equal([program.Pid, program.Child], o.GetProperty("moved").EnumerateArray().Select(e => e.GetInt32()).Order().ToArray());
            var kept = Assert.Single(o.GetProperty("kept").EnumerateArray());
            Assert.Equal("198.51.100.1:8080", kept.GetProperty("remote").GetString());
        }
        Assert.Equal("new isp2 10.2.0.2", program.Ask("new"));
        program.Process.Kill(entireProcessTree: true);
        Via.WaitUntil(() => fixture.State.Journals().Count == 0, "the reaper to remove the route of the exited process");
        HostSnapshot.AssertUnchanged(before, T);
    }

    [RootFact]
    public void What_cannot_be_attached_is_refused_and_nothing_changes()
    {
        var before = HostSnapshot.Take(T);
        using var program = new Program(T);
        int gone;
        using (var exited = Process.Start("true")!) { exited.WaitForExit(); gone = exited.Id; }
        void Refused(string why, params string[] args)
        {
            var r = Via.Run(T, args);
            output.WriteLine(r.Err);
            Assert.Equal(125, r.Code);
            Assert.Contains(why, r.Err);
            Assert.Single(r.Err.Trim().Split('\n'));
            HostSnapshot.AssertUnchanged(before, T);
        }
        Refused($"no process {gone}", "attach", "--pid", $"{gone}", "--dev", "up2");
        Refused("process 1 (init) cannot be attached", "attach", "--pid", "1", "--dev", "up2");
        if (File.ReadAllText("/proc/2/stat").Contains("(kthreadd)", StringComparison.Ordinal))
            Refused("kernel thread", "attach", "--pid", "2", "--dev", "up2");
        Refused("only method cgroup can", "attach", "--pid", $"{program.Pid}", "--dev", "up2", "--method", "preload");
        Refused($"process {program.Pid} is on no route", "detach", "--pid", $"{program.Pid}");

        // Attached once, a second attach names the route it is on; the first stays as it was.
        Assert.Equal(0, Via.Run(T, "attach", "--pid", $"{program.Pid}", "--dev", "up2").Code);
        string id = Assert.Single(Via.Routes(T)).GetProperty("id").GetString()!;
        var again = Via.Run(T, "attach", "--pid", $"{program.Pid}", "--dev", "up1");
        Assert.Equal(125, again.Code);
        Assert.Contains($"process {program.Pid} is already on route {id}; 'via detach --pid {program.Pid}' first", again.Err);
        Assert.Equal(id, Assert.Single(Via.Routes(T)).GetProperty("id").GetString());
        Assert.Equal(0, Via.Run(T, "detach", "--pid", $"{program.Pid}").Code);
        HostSnapshot.AssertUnchanged(before, T);
    }

    [RootFact]
    public void Via_itself_a_routed_program_and_a_threaded_cgroup_are_refused()
    {
        using var own = new OwnCgroup(fixture.State, Path.Combine("domain", "threads"));
        using var program = new Program(T);
        using var via = Via.Start(T, ["run", "--dev", "up1", "--", "sleep", "600"]);
        int routed = 0;
        try
        {
            Via.WaitForRoute(T, "up1");
            var route = Assert.Single(Via.Routes(T));
            string id = route.GetProperty("id").GetString()!;
            routed = route.GetProperty("processes")[0].GetProperty("pid").GetInt32();
            var before = HostSnapshot.Take(T);
            var self = Via.Run(T, "attach", "--pid", $"{via.Id}", "--dev", "up2");
            Assert.Equal(125, self.Code);
            Assert.Contains($"process {via.Id} is via itself", self.Err);
            var taken = Via.Run(T, "attach", "--pid", $"{routed}", "--dev", "up2");
            Assert.Equal(125, taken.Code);
            Assert.Contains($"process {routed} is already on route {id}", taken.Err);

            // A process whose main thread is in a threaded cgroup: the kernel moves whole processes only out of a domain.
            File.WriteAllText(Path.Combine(own.Path, "cgroup.type"), "threaded");
            File.WriteAllText(Path.Combine(Path.GetDirectoryName(own.Path)!, "cgroup.procs"), $"{program.Pid}");
            File.WriteAllText(Path.Combine(own.Path, "cgroup.threads"), $"{program.Pid}");
            var threaded = Via.Run(T, "attach", "--pid", $"{program.Pid}", "--dev", "up2");
            output.WriteLine(threaded.Err);
            Assert.Equal(125, threaded.Code);
            Assert.Contains("is of type 'threaded'", threaded.Err);
            HostSnapshot.AssertUnchanged(before, T);
        }
        finally
        {
            // Its program ends: 'via run' removes its route itself.
            if (routed > 0) Topology.Run("kill", [$"{routed}"]);
            if (!via.WaitForExit(30000)) via.Kill(entireProcessTree: true);
        }
        Via.WaitUntil(() => fixture.State.Journals().Count == 0, "the route of 'via run' to go");
    }

    /// <summary>A cgroup of the test's own, beside the class's subtree (not in it: 'via gc' there would take it for via's), made and removed by the test.</summary>
    private sealed class OwnCgroup : IDisposable
    {
        public string Top { get; }
        public string Path { get; }

        /// <summary>Its path below the hierarchy's root, as via names it.</summary>
        public string Below { get; }

        public OwnCgroup(ClassState state, string below)
        {
            string root = Mechanisms.Cgroup.CgroupPaths.Preferred(Cgroup2.FindMounts())!;
            Top = System.IO.Path.Combine(root, state.Subtree + "-own");
            Path = System.IO.Path.Combine(Top, below);
            Below = Path[root.Length..];
            Directory.CreateDirectory(Path);
        }

        public void Take(params int[] pids)
        {
            foreach (int pid in pids) File.WriteAllText(System.IO.Path.Combine(Path, "cgroup.procs"), $"{pid}");
        }

        public void Dispose() => Remove(Top);

        private static void Remove(string cgroup)
        {
            if (!Directory.Exists(cgroup)) return;
            foreach (var child in Directory.EnumerateDirectories(cgroup)) Remove(child);
            if (Cgroup2.Populated(cgroup) == true)
            {
                File.WriteAllText(System.IO.Path.Combine(cgroup, "cgroup.kill"), "1");
                Via.WaitUntil(() => Cgroup2.Populated(cgroup) != true, $"the processes in {cgroup} to die", TimeSpan.FromSeconds(10));
            }
            Directory.Delete(cgroup);
        }
    }

    [RootFact]
    public void An_attached_cgroup_is_routed_where_it_is_and_detach_restores_it()
    {
        using var own = new OwnCgroup(fixture.State, "job");
        using var program = new Program(T);
        own.Take(program.Pid, program.Child);
        string home = CgroupOf(program.Pid);
        var before = HostSnapshot.Take(T);
        var attach = Via.Run(T, "attach", "--cgroup", own.Path, "--dev", "up2");
        output.WriteLine(attach.Out + attach.Err);
        Assert.Equal(0, attach.Code);
        Assert.Contains("1 connection(s) opened before the attach keep their path", attach.Out);
        string id = Assert.Single(Via.Routes(T)).GetProperty("id").GetString()!;
        Assert.Contains($"{id}: attached cgroup {own.Below}", Via.Run(T, "ls").Out);
        // Its processes stay where they are (a service manager keeps track of them), and are routed there.
        Assert.Equal(home, CgroupOf(program.Pid));
        Assert.Equal("new isp2 10.2.0.2", program.Ask("new"));
        Assert.Equal("child isp2 10.2.0.2", program.Ask("child"));
        Assert.Equal("old isp1 10.1.0.2", program.Ask("old"));
        var again = Via.Run(T, "attach", "--cgroup", own.Path, "--dev", "up1");
        Assert.Equal(125, again.Code);
        Assert.Contains($"is already attached to route {id}", again.Err);

        var detach = Via.Run(T, "detach", "--cgroup", own.Path);
        output.WriteLine(detach.Out + detach.Err);
        Assert.Equal(0, detach.Code);
        Assert.Contains("the route is removed", detach.Out);
        Assert.Equal("new isp1 10.1.0.2", program.Ask("new"));
        Assert.True(Directory.Exists(own.Path), "via removed a cgroup it did not make");
        Assert.Equal(home, CgroupOf(program.Pid));
        HostSnapshot.AssertUnchanged(before, T);
    }

    [RootFact]
    public void A_unit_is_found_by_name_and_its_route_goes_when_its_cgroup_goes()
    {
        string unit = $"via-attach-{System.Environment.ProcessId}";
        using var own = new OwnCgroup(fixture.State, Path.Combine("test.slice", unit + ".service"));
        using var program = new Program(T);
        own.Take(program.Pid, program.Child);
        var before = HostSnapshot.Take(T);
        var attach = Via.Run(T, "attach", "--unit", unit, "--dev", "up2", "--json");
        output.WriteLine(attach.Out + attach.Err);
        Assert.Equal(0, attach.Code);
        using (var doc = JsonDocument.Parse(attach.Out))
        {
            Assert.Equal(own.Below, doc.RootElement.GetProperty("cgroup").GetString());
            Assert.Equal([program.Pid, program.Child], doc.RootElement.GetProperty("processes").EnumerateArray().Select(e => e.GetInt32()).Order().ToArray());
        }
        Assert.Contains($"attached unit {unit}.service (cgroup {own.Below})", Via.Run(T, "ls").Out);
        Assert.Equal("new isp2 10.2.0.2", program.Ask("new"));
        // The service stops: its processes exit and its cgroup is removed; the route goes with it.
        program.Process.Kill(entireProcessTree: true);
        program.Process.WaitForExit();
        Via.WaitUntil(() => Cgroup2.Populated(own.Path) != true, "the unit's processes to exit");
        Directory.Delete(own.Path);
        Via.WaitUntil(() => fixture.State.Journals().Count == 0, "the reaper to remove the route of the removed cgroup");
        HostSnapshot.AssertUnchanged(before, T);
        var gone = Via.Run(T, "attach", "--unit", unit, "--dev", "up2");
        Assert.Equal(125, gone.Code);
        Assert.Contains($"unit {unit}.service has no cgroup", gone.Err);
    }
}
