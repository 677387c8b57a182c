namespace Via.Mechanisms.Changes;

/// <summary>
/// One change to the host, as plain data: it can be printed (its ip/bpftool equivalent), applied,
/// undone, and written to the journal (<see cref="JournalCodec"/>) so that another process (the reaper, <c>via gc</c>) can undo it.
/// Undo is idempotent: undoing a change that was never applied, or was undone already, does nothing.
/// </summary>
public abstract record HostChange
{
    /// <summary>The equivalent command line, for --dry-run and --verbose.</summary>
    public abstract string Command { get; }

    /// <summary>The command that undoes it.</summary>
    public abstract string UndoCommand { get; }

    public abstract void Apply(Host host);

    /// <summary>Undoes the change; true if something was removed.</summary>
    public abstract bool Undo(Host host);

    /// <summary>For a change that is one rtnetlink request: that request, so that the
    /// <see cref="Applier"/> sends a run of them in one batch (one system call, not one each).</summary>
    public virtual Kernel.Netlink.RtnlRequest? ApplyRequest => null;

    /// <summary>The rtnetlink request that undoes it, likewise.</summary>
    public virtual Kernel.Netlink.RtnlRequest? UndoRequest => null;
}
