using System.Text.Json;

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

    /// <summary>Its kind in the journal ("route", "sock-mark", ...): the key of its <see cref="ChangeCodec"/>.</summary>
    public abstract string Kind { get; }

    /// <summary>Writes its fields into the journal object (the codec has written "kind" already).</summary>
    public abstract void Write(Utf8JsonWriter w);

    public abstract void Apply(Host host);

    /// <summary>The same change for IFACE re-created with a new index (a guard that names it), or null
    /// when the change does not depend on the index. The route's watcher re-applies what differs.</summary>
    public virtual HostChange? ForDevice(int index) => null;

    /// <summary>Undoes the change; true if something was removed.</summary>
    public abstract bool Undo(Host host);

    /// <summary>For a change that is one rtnetlink request: that request, so that the
    /// <see cref="Applier"/> sends a run of them in one batch (one system call, not one each).</summary>
    public virtual Kernel.Netlink.RtnlRequest? ApplyRequest => null;

    /// <summary>The rtnetlink request that undoes it, likewise.</summary>
    public virtual Kernel.Netlink.RtnlRequest? UndoRequest => null;
}

/// <summary>How to read one kind of <see cref="HostChange"/> back from the journal. Each change
/// kind declares its own next to its type; the core kinds are listed in <see cref="ChangeKinds"/>,
/// a mechanism's in its <see cref="IMechanism.ChangeKinds"/>.</summary>
public sealed record ChangeCodec(string Kind, Func<JsonElement, HostChange> Read);
