using System.Net;
using System.Net.Sockets;
using Via.Kernel;
using Via.Kernel.Netlink;
using Via.Mechanisms;
using Via.Mechanisms.Changes;

namespace Via.Tests.Unit;

/// <summary>
/// Applier: all or nothing, and undo in reverse, through a fake rtnetlink (<see cref="IRtnlBatcher"/>)
/// that refuses the request the test chooses. No root, no kernel: the other steps are fakes too.
/// </summary>
public sealed class ApplierTests
{
    /// <summary>A step that is not an rtnetlink request (a cgroup, an eBPF attach): applied and undone in the log.</summary>
    private sealed record Step(string Name, List<string> Log, bool FailsToApply = false, bool FailsToUndo = false) : HostChange
    {
        public override string Command => "make " + Name;
        public override string UndoCommand => "remove " + Name;
        public override string Kind => "test-step";

        public override void Write(System.Text.Json.Utf8JsonWriter w) => w.WriteString("name", Name);

        public override void Apply(Host host)
        {
            if (FailsToApply) throw new KernelException("make", Name, Errno.EBUSY);
            Log.Add(Command);
        }

        public override bool Undo(Host host)
        {
            if (FailsToUndo) throw new KernelException("remove", Name, Errno.EBUSY);
            Log.Add(UndoCommand);
            return true;
        }
    }

    /// <summary>
    /// rtnetlink as the kernel would answer: every request done, except the <see cref="RefuseNth"/>-th
    /// (counted from 1 over all batches) and those <see cref="Refuse"/> matches, answered with an error;
    /// a batch holding one that <see cref="Lose"/> matches throws, as when the answers are lost.
    /// </summary>
    private sealed class FakeRtnl(List<string> log) : IRtnlBatcher
    {
        private int _count;
        public int RefuseNth { get; init; }
        public Func<string, bool> Refuse { get; init; } = _ => false;
        public Func<string, bool> Lose { get; init; } = _ => false;
        public List<int> Batches { get; } = [];

        public RtnlOutcome[] Batch(IReadOnlyList<RtnlRequest> requests)
        {
            Batches.Add(requests.Count);
            var outcomes = new List<RtnlOutcome>();
            foreach (var r in requests)
            {
                string text = $"{r.Operation} {r.Target}";
                log.Add(text);
                bool refused = ++_count == RefuseNth || Refuse(text);
                outcomes.Add(refused ? new RtnlOutcome(false, new KernelException(r.Operation, r.Target, Errno.EEXIST)) : new RtnlOutcome(true, null));
            }
            if (requests.Any(r => Lose($"{r.Operation} {r.Target}")))
                throw new KernelException(requests[0].Operation, "(netlink receive)", Errno.EAGAIN, "no answer from the kernel");
            return [.. outcomes];
        }
    }

    private static readonly IPAddress Gateway = IPAddress.Parse("10.2.0.1"), Source = IPAddress.Parse("10.2.0.2");

    // A route's plan in via's order: its cgroup and programs, then its table and rules in one batch.
    private static readonly AddRoute Default = new(new Route(AddressFamily.InterNetwork, 22000, Gateway: Gateway, OutputLink: 3, Protocol: 86), "up2");
    private static readonly AddRoute Unreachable = new(new Route(AddressFamily.InterNetwork, 22000, RouteType.Unreachable, Protocol: 86));
    private static readonly AddRule MarkRule = new(new Rule(AddressFamily.InterNetwork, 12000, 22000, Mark: 0x1, MarkMask: 0xff, Protocol: 86));
    private static readonly AddRule SourceRule = new(new Rule(AddressFamily.InterNetwork, 12000, 22000, Source: Source, SourceLength: 32, Protocol: 86));

    private static List<HostChange> Plan(List<string> log, Step? after = null) =>
        [new Step("cgroup", log), new Step("mark program", log), Default, Unreachable, MarkRule, SourceRule, .. after is null ? Array.Empty<HostChange>() : [after]];

    private static string Add(HostChange c) => $"{c.ApplyRequest!.Operation} {c.ApplyRequest.Target}";
    private static string Del(HostChange c) => $"{c.UndoRequest!.Operation} {c.UndoRequest.Target}";

    [Fact]
    public void A_run_of_routes_and_rules_goes_in_one_batch_after_the_other_steps()
    {
        var log = new List<string>();
        var rtnl = new FakeRtnl(log);
        var applied = new List<HostChange>();
        var plan = Plan(log);
        Applier.Apply(new Host(rtnl), plan, applied.Add);
        Assert.Equal(["make cgroup", "make mark program", Add(Default), Add(Unreachable), Add(MarkRule), Add(SourceRule)], log);
        Assert.Equal([4], rtnl.Batches);
        Assert.Equal(plan, applied);
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    [InlineData(4)]
    public void The_kernel_refusing_the_nth_request_undoes_all_the_rest_in_reverse(int n)
    {
        var log = new List<string>();
        var rtnl = new FakeRtnl(log) { RefuseNth = n };
        var plan = Plan(log);
        var e = Assert.Throws<ApplyException>(() => Applier.Apply(new Host(rtnl), plan));

        HostChange refused = plan[1 + n];
        Assert.Same(refused, e.Change);
        Assert.Contains("EEXIST", e.Message);
        Assert.StartsWith(refused.Command, e.Message);
        Assert.Empty(e.Leftovers);
        // The kernel went on past the refused request: the ones after it in the batch were made too,
        // and are undone with those before it, in reverse, in one batch; then the other steps.
        HostChange[] made = [.. new HostChange[] { Default, Unreachable, MarkRule, SourceRule }.Where(c => c != refused)];
        Assert.Equal([.. Enumerable.Reverse(made).Select(Del), "remove mark program", "remove cgroup"], log.Skip(6));
        Assert.Equal([4, 3], rtnl.Batches);
    }

    [Fact]
    public void A_step_failing_after_the_batch_undoes_the_batch_and_not_itself()
    {
        var log = new List<string>();
        var rtnl = new FakeRtnl(log);
        var failing = new Step("guard", log, FailsToApply: true);
        var e = Assert.Throws<ApplyException>(() => Applier.Apply(new Host(rtnl), Plan(log, failing)));
        Assert.Same(failing, e.Change);
        Assert.Equal("make guard: Device or resource busy (EBUSY)", e.Message);
        Assert.Empty(e.Leftovers);
        Assert.Equal([Del(SourceRule), Del(MarkRule), Del(Unreachable), Del(Default), "remove mark program", "remove cgroup"], log.Skip(6));
        Assert.DoesNotContain("remove guard", log);
    }

    [Fact]
    public void A_batch_whose_answers_are_lost_counts_as_made_and_is_undone_whole()
    {
        var log = new List<string>();
        var rtnl = new FakeRtnl(log) { Lose = t => t.StartsWith("ip rule add", StringComparison.Ordinal) };
        var e = Assert.Throws<ApplyException>(() => Applier.Apply(new Host(rtnl), Plan(log)));
        Assert.Same(Default, e.Change); // the batch's first: which one failed is not known
        Assert.Contains("no answer from the kernel", e.Message);
        Assert.Empty(e.Leftovers);
        Assert.Equal([Del(SourceRule), Del(MarkRule), Del(Unreachable), Del(Default), "remove mark program", "remove cgroup"], log.Skip(6));
    }

    [Fact]
    public void What_cannot_be_undone_is_named_in_the_leftovers_and_the_rest_is_still_undone()
    {
        var log = new List<string>();
        // The last rule is refused; then the kernel refuses to delete the default route.
        var rtnl = new FakeRtnl(log) { RefuseNth = 4, Refuse = t => t == Del(Default) };
        var cgroup = new Step("cgroup", log, FailsToUndo: true);
        List<HostChange> plan = [cgroup, new Step("mark program", log), Default, Unreachable, MarkRule, SourceRule];
        var e = Assert.Throws<ApplyException>(() => Applier.Apply(new Host(rtnl), plan));
        Assert.Same(SourceRule, e.Change);
        // In the order of the plan; each with the reason of its own undo.
        Assert.Equal([((HostChange)cgroup, "Device or resource busy (EBUSY)"), ((HostChange)Default, "File exists (EEXIST)")],
            e.Leftovers.Select(l => ((HostChange)l.Change, l.Reason)));
        Assert.Equal("remove cgroup: Device or resource busy (EBUSY)", e.Leftovers[0].ToString());
        Assert.Equal([Del(MarkRule), Del(Unreachable), Del(Default), "remove mark program"], log.Skip(6));
    }

    [Fact]
    public void An_undo_batch_whose_answers_are_lost_leaves_all_of_it_as_leftovers()
    {
        var log = new List<string>();
        var rtnl = new FakeRtnl(log) { Lose = t => t.StartsWith("ip rule del", StringComparison.Ordinal) };
        var leftovers = Applier.Undo(new Host(rtnl), Plan(log).Skip(2).ToList());
        Assert.Equal([Default, Unreachable, MarkRule, SourceRule], leftovers.Select(l => l.Change));
        Assert.All(leftovers, l => Assert.Contains("no answer from the kernel", l.Reason));
    }

    [Fact]
    public void A_failure_telling_of_a_change_undoes_that_change_too()
    {
        var log = new List<string>();
        var rtnl = new FakeRtnl(log);
        var plan = Plan(log);
        // The caller's 'applied' (the journal being written, say) fails after the second step.
        var e = Assert.Throws<ApplyException>(() => Applier.Apply(new Host(rtnl), plan, c => { if (c == plan[1]) throw new IOException("disk full"); }));
        Assert.Same(plan[1], e.Change);
        Assert.Equal(["make cgroup", "make mark program", "remove mark program", "remove cgroup"], log);
        Assert.Empty(rtnl.Batches);
    }

    [Fact]
    public void Undo_of_nothing_made_sends_nothing()
    {
        var rtnl = new FakeRtnl([]);
        Assert.Empty(Applier.Undo(new Host(rtnl), []));
        Assert.Empty(rtnl.Batches);
    }
}
