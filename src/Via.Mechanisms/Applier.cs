using Via.Kernel;
using Via.Kernel.Netlink;
using Via.Mechanisms.Changes;

namespace Via.Mechanisms;

/// <summary>
/// Applies a list of changes all or nothing, and undoes them in reverse. Runs of consecutive
/// rtnetlink changes (routes, rules) go to the kernel as one batch.
/// </summary>
public static class Applier
{
    /// <summary>
    /// Applies the changes in order. If one fails, every change applied so far (in a batch, also
    /// those after the failing one) is undone in reverse, and the failure is rethrown as an
    /// <see cref="ApplyException"/> naming the step.
    /// </summary>
    public static void Apply(Host host, IReadOnlyList<HostChange> changes, Action<HostChange>? applied = null)
    {
        var done = new List<HostChange>();
        [System.Diagnostics.CodeAnalysis.DoesNotReturn]
        void Fail(HostChange change, Exception e) => throw new ApplyException(change, e, Undo(host, done));

        for (int i = 0; i < changes.Count;)
        {
            int end = RunEnd(changes, i, c => c.ApplyRequest is not null);
            if (end > i)
            {
                var run = changes.Skip(i).Take(end - i).ToList();
                RtnlOutcome[] outcomes;
                try
                {
                    outcomes = host.Batcher.Batch([.. run.Select(c => c.ApplyRequest!)]);
                    int failed = Array.FindIndex(outcomes, o => o.Error is not null);
                    if (failed < 0) foreach (var c in run) applied?.Invoke(c);
                }
                catch (Exception e)
                {
                    // The batch was sent, and the kernel may have made any part of it before the
                    // failure (a lost answer, a failure after the send): count all of it as made.
                    // Undoing what was never made does nothing.
                    done.AddRange(run);
                    Fail(run[0], e);
                }
                for (int k = 0; k < run.Count; k++)
                    if (outcomes[k].Error is null) done.Add(run[k]);
                Trace('+', i, $"rtnl*{run.Count}");
                int refused = Array.FindIndex(outcomes, o => o.Error is not null);
                if (refused >= 0) Fail(run[refused], outcomes[refused].Error!);
                i = end;
                continue;
            }
            try
            {
                changes[i].Apply(host);
            }
            catch (Exception e)
            {
                // Not undone: a change that fails makes nothing (a cgroup that exists already is another route's).
                Fail(changes[i], e);
            }
            done.Add(changes[i]);
            Trace('+', i, changes[i].Kind);
            try { applied?.Invoke(changes[i]); }
            catch (Exception e) { Fail(changes[i], e); }
            i++;
        }
    }

    /// <summary>
    /// Undoes the changes in reverse order, going on past failures; returns what could not be undone
    /// (or may not have been: a batch whose answer was lost counts as not undone), in the order given.
    /// </summary>
    public static List<Leftover> Undo(Host host, IReadOnlyList<HostChange> changes, Action? undone = null)
    {
        var failures = new List<Leftover>();
        var reversed = changes.Reverse().ToList();
        for (int i = 0; i < reversed.Count;)
        {
            int end = RunEnd(reversed, i, c => c.UndoRequest is not null);
            if (end > i)
            {
                var run = reversed.Skip(i).Take(end - i).ToList();
                var refused = new List<Leftover>();
                try
                {
                    var outcomes = host.Batcher.Batch([.. run.Select(c => c.UndoRequest!)]);
                    for (int k = 0; k < run.Count; k++)
                        if (outcomes[k].Error is { } error) refused.Add(new Leftover(run[k], error.Reason));
                    foreach (var _ in run) undone?.Invoke();
                }
                catch (Exception e)
                {
                    refused = [.. run.Select(c => new Leftover(c, Reason(c, e)))];
                }
                failures.AddRange(refused);
                Trace('-', i, $"rtnl*{run.Count}");
                i = end;
                continue;
            }
            try
            {
                reversed[i].Undo(host);
                undone?.Invoke();
            }
            catch (Exception e)
            {
                failures.Add(new Leftover(reversed[i], Reason(reversed[i], e)));
            }
            Trace('-', i, reversed[i].Kind);
            i++;
        }
        failures.Reverse();
        return failures;
    }

    /// <summary>
    /// Brings a live route back to its plan (its watcher): applies <paramref name="add"/> (guards
    /// first, then routes and rules in one batch), then undoes <paramref name="remove"/>. Unlike
    /// <see cref="Apply"/> it is not all or nothing: what it adds is a route's way out and its
    /// fail-closed rules, and each one that is made is better than none. Something that exists
    /// already (another via that shares the route repaired it first) counts as made. Returns what
    /// failed, one line each.
    /// </summary>
    public static List<string> Reconcile(Host host, IReadOnlyList<HostChange> add, IReadOnlyList<HostChange> remove)
    {
        var problems = new List<string>();
        foreach (var c in add.Where(c => c.ApplyRequest is null))
        {
            try { c.Apply(host); }
            catch (Exception e) { problems.Add($"{c.Command}: {(e is Kernel.KernelException k ? k.Reason : e.Message)}"); }
        }
        var batch = add.Where(c => c.ApplyRequest is not null).ToList();
        try
        {
            var outcomes = host.Batcher.Batch([.. batch.Select(c => c.ApplyRequest!)]);
            for (int i = 0; i < batch.Count; i++)
                if (outcomes[i].Error is { ErrorCode: not Kernel.Errno.EEXIST } error) problems.Add($"{batch[i].Command}: {error.Reason}");
        }
        catch (Exception e)
        {
            problems.Add($"{batch.Count} routes and rules: {e.Message}");
        }
        problems.AddRange(Undo(host, remove).Select(l => $"could not remove {l}"));
        return problems;
    }

    /// <summary>With VIA_TRACE, one phase per change (or batch) applied or undone: "+3:veth" (the change at index 3).</summary>
    private static void Trace(char sign, int index, string kind)
    {
        if (PhaseTrace.On) PhaseTrace.Mark($"{sign}{index}:{kind}");
    }

    /// <summary>Why, for a message that already names the change: the errno alone when the failed call is the undo command itself.</summary>
    private static string Reason(HostChange change, Exception e) => e switch
    {
        Kernel.KernelException k when change.UndoCommand == $"{k.Operation} {k.Target}" => k.Reason,
        _ => e.Message,
    };

    /// <summary>The end (exclusive) of the run of changes from <paramref name="start"/> that match.</summary>
    private static int RunEnd(IReadOnlyList<HostChange> changes, int start, Func<HostChange, bool> batchable)
    {
        int end = start;
        while (end < changes.Count && batchable(changes[end])) end++;
        return end;
    }
}

/// <summary>A change that could not be undone, and why.</summary>
public sealed record Leftover(HostChange Change, string Reason)
{
    public override string ToString() => $"{Change.UndoCommand}: {Reason}";
}

/// <summary>A change failed; everything before it was undone (except <see cref="Leftovers"/>).</summary>
public sealed class ApplyException(HostChange change, Exception inner, List<Leftover> leftovers)
    : Exception($"{change.Command}: {(inner is Kernel.KernelException k ? k.Reason : inner.Message)}", inner)
{
    public HostChange Change { get; } = change;
    public List<Leftover> Leftovers { get; } = leftovers;
}
