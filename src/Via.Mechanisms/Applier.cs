using Via.Mechanisms.Changes;

namespace Via.Mechanisms;

/// <summary>Applies a list of changes all or nothing, and undoes them in reverse.</summary>
public static class Applier
{
    /// <summary>
    /// Applies the changes in order. If one fails, the ones applied so far are undone in reverse
    /// and the failure is rethrown as an <see cref="ApplyException"/> naming the step.
    /// </summary>
    public static void Apply(Host host, IReadOnlyList<HostChange> changes, Action<HostChange>? applied = null)
    {
        for (int i = 0; i < changes.Count; i++)
        {
            try
            {
                changes[i].Apply(host);
            }
            catch (Exception e)
            {
                var leftovers = Undo(host, changes.Take(i).ToList());
                throw new ApplyException(changes[i], e, leftovers);
            }
            applied?.Invoke(changes[i]);
        }
    }

    /// <summary>Undoes the changes in reverse order, going on past failures; returns what could not be undone.</summary>
    public static List<string> Undo(Host host, IReadOnlyList<HostChange> changes, Action? undone = null)
    {
        var failures = new List<string>();
        for (int i = changes.Count - 1; i >= 0; i--)
        {
            try
            {
                changes[i].Undo(host);
                undone?.Invoke();
            }
            catch (Exception e)
            {
                failures.Add($"{changes[i].UndoCommand}: {e.Message}");
            }
        }
        return failures;
    }
}

/// <summary>A change failed; everything before it was undone (except <see cref="Leftovers"/>).</summary>
public sealed class ApplyException(HostChange change, Exception inner, List<string> leftovers)
    : Exception($"{change.Command}: {inner.Message}", inner)
{
    public HostChange Change { get; } = change;
    public List<string> Leftovers { get; } = leftovers;
}
