using System.Diagnostics;
using System.Net.Sockets;
using System.Text.RegularExpressions;
using Via.Cli.Commands.Demo;
using Via.Kernel.Cgroups;
using Via.Kernel.Netlink;
using Via.Mechanisms;
using Via.Mechanisms.Changes;
using Xunit.Abstractions;

namespace Via.Tests.Kernel;

/// <summary>
/// Unexpected states make via fail closed: it keeps what it cannot prove unused, keeps a journal
/// naming what it could not undo, says why in one line, and never leaves the host changed silently.
/// This class has its own topology, state directory, cgroup subtree and tables (<see cref="ClassState"/>);
/// real routes it makes use tables 2299x, named on the command line.
/// </summary>
public sealed class FailClosedTests(TopologyFixture<FailClosedTests> fixture, ITestOutputHelper output) : IClassFixture<TopologyFixture<FailClosedTests>>, IDisposable
{
    private Topology T => fixture.Topology;

    private ClassState S => fixture.State;

    /// <summary>Each test begins with no journal: what one left (on purpose, or failing) is not the next one's.</summary>
    public void Dispose()
    {
        if (Directory.Exists(S.RoutesDirectory)) Directory.Delete(S.RoutesDirectory, recursive: true);
    }

    /// <summary>bin/via ARGS in the topology's host namespace, with this class's state directory and the given environment.</summary>
    private (int Code, string Out, string Err) Via(string[] environment, params string[] args)
    {
        var r = Kernel.Via.RunWith(T, environment, args);
        output.WriteLine($"via {string.Join(' ', args)} -> {r.Code}\n{r.Out}{r.Err}");
        return r;
    }

    private string JournalPath(string id) => S.JournalPath(id);

    /// <summary>Writes a journal as via would, for a route this test describes.</summary>
    private void WriteJournal(string id, string network, string? cgroup, params HostChange[] changes)
    {
        var route = new ActiveRoute(id, "test|" + id, network, DateTimeOffset.UtcNow, "up2", null, 0x7e0000, uint.Parse(id[1..], System.Globalization.CultureInfo.InvariantCulture),
            "cgroup", cgroup, [], false, [.. changes]);
        Directory.CreateDirectory(S.RoutesDirectory);
        File.WriteAllBytes(JournalPath(id), JournalCodec.Encode(route));
    }

    private string HostNetwork => T.InHost(["readlink", "/proc/self/ns/net"]).Out.Trim();

    private static AddRule TaggedRule(uint table) =>
        new(new Rule(AddressFamily.InterNetwork, 12000, table, Mark: 0x7e0000, MarkMask: 0xff0000, Protocol: 86));

    private string Rules() => Topology.Run("ip", ["-n", T.Host, "rule"]).Out;

    private static void AssertOneLine(string err)
    {
        Assert.Single(err.Trim().Split('\n'));
        Assert.StartsWith("via: ", err);
        Assert.DoesNotContain("   at ", err);
    }

    [RootFact]
    public void A_membership_that_cannot_be_read_counts_as_processes_remaining()
    {
        // The journal's cgroup is a directory that is no cgroup: it has no cgroup.events.
        string notACgroup = Path.Combine(Path.GetTempPath(), $"via-not-a-cgroup-{Guid.NewGuid():N}");
        Directory.CreateDirectory(notACgroup);
        Topology.Ip("-n", T.Host, "rule", "add", "pref", "12000", "fwmark", "0x7e0000/0xff0000", "lookup", "22990", "proto", "86");
        try
        {
            WriteJournal("t22990", HostNetwork, notACgroup, TaggedRule(22990));

            var gc = Via([], "gc");
            Assert.Equal(125, gc.Code);
            Assert.Contains("kept route t22990", gc.Err);
            Assert.Contains("cannot tell whether processes remain", gc.Err);
            Assert.Contains("cgroup.events", gc.Err);
            Assert.True(File.Exists(JournalPath("t22990")));
            Assert.Contains("lookup 22990", Rules());
            Assert.Contains("would keep route t22990", Via([], "gc", "--dry-run").Err);
            Assert.Matches(@"t22990 .* up ", Via([], "ls").Out);

            // 'via down' cuts it off rather than tearing it down under processes that may run.
            var down = Via([], "down", "t22990");
            Assert.Equal(0, down.Code);
            Assert.Contains("cut off", down.Out);
            Assert.Contains("lookup 22990", Rules());

            // Once the cgroup is known to be gone, nothing can be in it: gc finishes.
            Directory.Delete(notACgroup);
            var again = Via([], "gc");
            Assert.Equal(0, again.Code);
            Assert.Contains("removed route t22990", again.Out);
            Assert.DoesNotContain("lookup 22990", Rules());
            Assert.False(File.Exists(JournalPath("t22990")));
        }
        finally
        {
            Topology.Run("ip", ["-n", T.Host, "rule", "del", "pref", "12000", "fwmark", "0x7e0000/0xff0000", "lookup", "22990"]);
            if (Directory.Exists(notACgroup)) Directory.Delete(notACgroup);
        }
    }

    [RootFact]
    public void A_route_whose_network_namespace_cannot_be_found_keeps_its_journal()
    {
        // net:[1] names no namespace: no /run/netns entry, no process in it.
        WriteJournal("t22991", "net:[1]", null, TaggedRule(22991));
        var gc = Via([], "gc");
        Assert.Equal(125, gc.Code);
        Assert.Contains("kept route t22991", gc.Err);
        Assert.Contains("network namespace net:[1] was not found", gc.Err);
        Assert.Contains($"remove {JournalPath("t22991")}", gc.Err);
        AssertOneLine(gc.Err);
        Assert.True(File.Exists(JournalPath("t22991")));
        Assert.Single(JournalCodecRead("t22991").Changes);

        // Doing what it says finishes it.
        File.Delete(JournalPath("t22991"));
        Assert.Equal(0, Via([], "gc").Code);
    }

    [RootFact]
    public void A_journal_that_cannot_be_read_is_kept_not_taken_for_garbage()
    {
        // A dangling symbolic link: reading it fails with an I/O error, not with a damaged journal.
        Directory.CreateDirectory(S.RoutesDirectory);
        string link = JournalPath("t22989");
        File.CreateSymbolicLink(link, $"/nonexistent-via-test-{Guid.NewGuid():N}/t22989.json");
        try
        {
            var gc = Via([], "gc");
            Assert.Equal(125, gc.Code);
            Assert.Contains($"kept journal {link}: cannot read it", gc.Err);
            Assert.Contains(link, Directory.EnumerateFiles(S.RoutesDirectory));
        }
        finally
        {
            File.Delete(link);
        }
    }

    private ActiveRoute JournalCodecRead(string id) => JournalCodec.Decode(File.ReadAllBytes(JournalPath(id)), id);

    [RootFact]
    public void An_undo_that_fails_keeps_a_journal_naming_what_is_left_and_gc_finishes_it()
    {
        var before = HostSnapshot.Take(T);
        int steps = PlanLength("22993");
        try
        {
            var r = Via(["VIA_FAULT=undo:3:fail"], "run", "--dev", "up2", "--table", "22993", "--", "true");
            Assert.Equal(0, r.Code); // the program's status
            Assert.Contains("could not undo: ", r.Err);
            Assert.Contains("injected fault at undo:3", r.Err);
            Assert.Contains($"recorded in {JournalPath("t22993")}; 'via gc' retries it", r.Err);
            var left = JournalCodecRead("t22993");
            Assert.InRange(left.Changes.Count, 1, steps - 1);
            Assert.Contains("t22993", Via([], "ls").Out);

            var gc = Via([], "gc");
            Assert.Equal(0, gc.Code);
            Assert.Contains("removed route t22993", gc.Out);
            Assert.False(File.Exists(JournalPath("t22993")));
        }
        finally
        {
            Via([], "gc"); // whatever an assertion above left
        }
        HostSnapshot.AssertUnchanged(before, T);
    }

    [RootFact]
    public void A_cgroup_the_kernel_refuses_to_remove_stays_in_the_journal_until_gc_can()
    {
        var before = HostSnapshot.Take(T);
        // The program (root here) makes a child cgroup in its own: rmdir of the route's cgroup then
        // fails with EBUSY, after its rules, routes and programs are gone.
        // (via mounted cgroup2 in its state directory: ip netns exec hides /sys/fs/cgroup.)
        string mkChild = $"mkdir {S.StateDirectory}/cgroup2$(sed -n 's/^0:://p' /proc/self/cgroup)/child";
        var r = Via([], "run", "--dev", "up2", "--table", "22998", "--", "sh", "-c", mkChild);
        Assert.Equal(0, r.Code);
        Assert.Contains("could not undo: rmdir ", r.Err);
        Assert.Contains("(EBUSY)", r.Err);
        Assert.Contains($"recorded in {JournalPath("t22998")}", r.Err);
        var left = JournalCodecRead("t22998");
        Assert.Equal([typeof(CreateCgroup)], left.Changes.Select(c => c.GetType()));
        Assert.DoesNotContain("22998", Rules());

        string child = Path.Combine(Cgroup2.FindMounts()[0], S.Subtree, "t22998", "child");
        try
        {
            Assert.Equal(125, Via([], "gc").Code); // still busy: gc says so, and keeps the journal
            Assert.True(File.Exists(JournalPath("t22998")));
            Directory.Delete(child);
            var gc = Via([], "gc");
            Assert.Equal(0, gc.Code);
            Assert.Contains("removed route t22998", gc.Out);
            Assert.False(File.Exists(JournalPath("t22998")));
        }
        finally
        {
            if (Directory.Exists(child)) Directory.Delete(child);
            Via([], "gc"); // whatever an assertion above left
        }
        HostSnapshot.AssertUnchanged(before, T);
    }

    [RootFact]
    public void A_failure_after_the_kernel_applied_a_batch_undoes_all_of_it()
    {
        var before = HostSnapshot.Take(T);
        // The last step is a rule, in the batch of routes and rules: fail after the kernel made it all.
        int steps = PlanLength("22992");
        var r = Via([$"VIA_FAULT=apply:{steps}:fail"], "run", "--dev", "up2", "--table", "22992", "--", "true");
        Assert.Equal(125, r.Code);
        Assert.Contains("could not set up the route", r.Err);
        Assert.Contains("injected fault", r.Err);
        AssertOneLine(r.Err);
        Assert.False(File.Exists(JournalPath("t22992")));
        HostSnapshot.AssertUnchanged(before, T);
    }

    private int PlanLength(string table)
    {
        var json = Via([], "run", "--dev", "up2", "--table", table, "--dry-run", "--json", "--", "true");
        using var doc = System.Text.Json.JsonDocument.Parse(json.Out);
        var steps = doc.RootElement.GetProperty("steps");
        Assert.StartsWith("ip ", steps[steps.GetArrayLength() - 1].GetProperty("command").GetString());
        return steps.GetArrayLength();
    }

    [RootFact]
    public void Every_command_reports_a_failure_in_one_line_with_125()
    {
        // Any failure, even one via does not expect (VIA_FAULT=command:1:fail throws at the start of the command).
        string[][] commands = [["ls"], ["ls", "--json"], ["down", "--all"], ["gc"], ["gc", "--dry-run"], ["doctor"], ["run", "--dev", "up2", "--", "true"]];
        foreach (var command in commands)
        {
            var r = Via(["VIA_FAULT=command:1:fail"], command);
            Assert.Equal(125, r.Code);
            AssertOneLine(r.Err);
            Assert.Contains("injected fault", r.Err);
        }
        // Failures of the host: via's state directory cannot be made (its path is a file).
        string file = Path.GetTempFileName();
        try
        {
            foreach (var command in new[] { new[] { "down", "--all" }, ["gc"] })
            {
                var r = Kernel.Via.RunWith(T, [$"VIA_STATE_DIR={file}"], command);
                output.WriteLine(r.Err);
                Assert.Equal(125, r.Code);
                AssertOneLine(r.Err);
                Assert.Contains($"cannot make via's state directory {file}", r.Err);
            }
        }
        finally
        {
            File.Delete(file);
        }
    }

    [RootFact]
    public void Unknown_options_are_refused_not_run()
    {
        var before = HostSnapshot.Take(T);
        var r = Via([], "run", "--dev", "up2", "--verbos", "--", "true");
        Assert.Equal(125, r.Code);
        AssertOneLine(r.Err);
        Assert.Contains("unknown option '--verbos'", r.Err);
        Assert.Equal(125, Via([], "down", "--al").Code);
        HostSnapshot.AssertUnchanged(before, T);
    }

    [RootFact]
    public void A_via_waiting_for_the_lock_says_who_holds_it_and_gives_up_in_bounded_time()
    {
        // A via that held the lock wrote itself into it.
        Assert.Equal(0, Via([], "run", "--dev", "up2", "--table", "22994", "--", "true").Code);
        string lockFile = Path.Combine(S.StateDirectory, "lock");
        Assert.Matches(@"^\d+ via run --dev up2 --table 22994 -- true\n$", File.ReadAllText(lockFile));

        // Another holder (as a via stuck in set-up would be), for longer than the waiter's timeout.
        File.WriteAllText(lockFile, "4242 via run --dev eth1 -- curl https://example.org\n");
        using var holder = Process.Start(new ProcessStartInfo("flock", ["-x", lockFile, "sleep", "60"]) { UseShellExecute = false })!;
        try
        {
            Kernel.Via.WaitUntil(() => Topology.Run("flock", ["-n", lockFile, "true"]).Code != 0, "flock to hold the lock", TimeSpan.FromSeconds(5));
            var clock = Stopwatch.StartNew();
            var r = Via(["VIA_LOCK_TIMEOUT=2"], "down", "--all");
            Assert.Equal(125, r.Code);
            Assert.InRange(clock.Elapsed.TotalSeconds, 2, 30);
            var lines = r.Err.Trim().Split('\n');
            Assert.Equal(2, lines.Length);
            Assert.Equal("via: waiting for the lock held by pid 4242 (via run --dev eth1 -- curl https://example.org)", lines[0]);
            Assert.StartsWith($"via: gave up after 2 s waiting for via's lock {lockFile}, held by pid 4242 (via run --dev eth1", lines[1]);
        }
        finally
        {
            holder.Kill(entireProcessTree: true); // flock and its sleep, which holds the lock too
            holder.WaitForExit();
        }
    }

    [RootFact]
    public void Read_only_commands_mount_and_create_nothing()
    {
        // In a mount namespace of its own with an empty /run (and, inside ip netns exec, no cgroup2
        // visible): a journal whose cgroup is not in sight, then every read-only command. /run must
        // be exactly as the test left it, and no cgroup2 mounted.
        string cgroup = $"/sys/fs/cgroup/{S.Subtree}/t22995";
        var journal = new ActiveRoute("t22995", "k", "net:[1]", DateTimeOffset.UtcNow, "up2", null, 0x7e0000, 22995, "cgroup", cgroup, [], false,
            [new CreateCgroup(cgroup), TaggedRule(22995)]);
        string script = $$"""
            set -u
            mount -t tmpfs none /run
            mkdir -p /run/state/routes
            printf '%s' "$JOURNAL" > /run/state/routes/t22995.json
            before=$(find /run | sort)
            for state in /run/state /run/none; do
                export VIA_STATE_DIR=$state
                {{ViaBinary.Path}} ls; {{ViaBinary.Path}} ls --json >/dev/null; {{ViaBinary.Path}} gc --dry-run; {{ViaBinary.Path}} doctor >/dev/null
                {{ViaBinary.Path}} run --dev up2 --dry-run -- true >/dev/null
            done
            after=$(find /run | sort)
            [ "$before" = "$after" ] || { echo "CHANGED: $after"; exit 3; }
            ! grep ' cgroup2 ' /proc/self/mounts || { echo "MOUNTED"; exit 4; }
            """;
        var r = T.InHost([.. S.EnvPrefix, $"JOURNAL={System.Text.Encoding.UTF8.GetString(JournalCodec.Encode(journal))}", "unshare", "-m", "sh", "-c", script]);
        output.WriteLine(r.Out + r.Err);
        Assert.Equal(0, r.Code);
        Assert.Contains("t22995", r.Out);
        // Its cgroup was read through a detached cgroup2 mount (in no mount table): it has none.
        Assert.Contains("would remove route t22995", r.Out);
    }

    [RootFact]
    public void With_the_state_directory_removed_the_last_via_still_removes_its_route_and_says_so_in_words()
    {
        var before = HostSnapshot.Take(T);
        string flag = Path.Combine(Path.GetTempPath(), $"via-fc-{Guid.NewGuid():N}");
        using var via = Kernel.Via.Start(T, ["run", "--dev", "up2", "--table", "22996", "--", "sh", "-c", $"echo started; while [ ! -e {flag} ]; do sleep 0.05; done"]);
        try
        {
            Assert.Equal("started", via.StandardOutput.ReadLine());
            Directory.Delete(S.StateDirectory, recursive: true);
            File.WriteAllText(flag, "");
            Assert.True(via.WaitForExit(30000));
            string err = via.StandardError.ReadToEnd();
            output.WriteLine(err);
            Assert.Equal(0, via.ExitCode);
            Assert.Contains("was removed while route t22996 was in use; removing the route from what this via remembers", err);
            Assert.DoesNotContain("could not", err);
            Assert.DoesNotMatch(new Regex(@"[A-Z][A-Za-z]+_[A-Za-z]+_"), err); // no .NET resource keys such as IO_PathNotFound_Path
            Assert.False(File.Exists(JournalPath("t22996")));
            HostSnapshot.AssertUnchanged(before, T);
        }
        finally
        {
            File.Delete(flag);
            if (!via.HasExited) via.Kill(entireProcessTree: true);
        }
    }

    [RootFact]
    public void Gc_names_links_as_ip_does()
    {
        var before = HostSnapshot.Take(T);
        Topology.Ip("-n", T.Host, "route", "add", "10.99.0.0/24", "dev", "up2", "table", "22997", "proto", "86");
        try
        {
            var dry = Via([], "gc", "--dry-run");
            Assert.Contains("would remove ip route 10.99.0.0/24 dev up2 table 22997 proto 86", dry.Out);
            var gc = Via([], "gc");
            Assert.Equal(0, gc.Code);
            Assert.Contains("removed ip route 10.99.0.0/24 dev up2 table 22997", gc.Out);
            Assert.DoesNotContain("dev if", gc.Out);
        }
        finally
        {
            Topology.Run("ip", ["-n", T.Host, "route", "del", "10.99.0.0/24", "table", "22997"]);
        }
        HostSnapshot.AssertUnchanged(before, T);
    }
}
