using System.Text.Json;
using Via.Kernel;
using Via.Kernel.Cgroups;
using Via.Mechanisms.Changes;

namespace Via.Mechanisms.Netcls;

/// <summary>
/// Mounts the net_cls hierarchy where none is (mount -t cgroup -o net_cls). Left in place, as
/// <see cref="MountCgroup2"/> is: it holds no state of its own once via's cgroups in it are gone.
/// </summary>
public sealed record MountNetCls(string Target) : HostChange
{
    public override string Command => $"mount -t cgroup -o net_cls net_cls {Target}";
    public override string UndoCommand => "# net_cls mount left in place";

    public static readonly ChangeCodec Codec = new("mount-net-cls", c => new MountNetCls(JsonFields.Need(c, "target")));

    public override string Kind => Codec.Kind;

    public override void Write(Utf8JsonWriter w) => w.WriteString("target", Target);

    public override void Apply(Host host)
    {
        if (!NetCls.FindMounts().Contains(Target)) NetCls.Mount(Target);
    }

    public override bool Undo(Host host) => false;
}

/// <summary>The route's net_cls cgroup with via's classid: <c>mkdir NET_CLS/via/tNNN; echo CLASSID &gt; net_cls.classid</c>.
/// net_cls is host-wide (not per network namespace): only via's own subtree is touched.</summary>
public sealed record CreateNetClsCgroup(string Path, uint Classid) : HostChange
{
    public override string Command => $"mkdir -p {Path} && echo 0x{Classid:x} > {Path}/net_cls.classid";
    public override string UndoCommand => $"rmdir {Path}";

    public static readonly ChangeCodec Codec = new("net-cls-cgroup", c => new CreateNetClsCgroup(JsonFields.Need(c, "path"), c.GetProperty("classid").GetUInt32()));

    public override string Kind => Codec.Kind;

    public override void Write(Utf8JsonWriter w)
    {
        w.WriteString("path", Path);
        w.WriteNumber("classid", Classid);
    }

    public override void Apply(Host host)
    {
        Cgroup2.Create(System.IO.Path.GetDirectoryName(Path)!); // mkdir and rmdir are the same in v1
        if (!Cgroup2.Create(Path)) throw new IOException($"net_cls cgroup {Path} exists already; run 'via gc' to remove leftovers");
        NetCls.SetClassid(Path, Classid);
    }

    /// <summary>
    /// Removes it wherever the net_cls hierarchy is visible now: the reaper or <c>via gc</c> may run in
    /// another mount namespace than the via that made it (each <c>ip netns exec</c> has its own, and
    /// via's mount at /run/via/net_cls went with it), so the cgroup is found by its place in the
    /// hierarchy (<c>via/tNNN</c>) below a net_cls mount of this namespace, mounted for the purpose if none is.
    /// </summary>
    public override bool Undo(Host host)
    {
        if (!NetCls.Bound()) return false; // no net_cls hierarchy: nothing was made, or it is gone
        string below = System.IO.Path.Combine(RouteCgroups.Subtree, System.IO.Path.GetFileName(Path));
        string root = NetclsMechanism.VisibleRoot(mount: true);
        string path = System.IO.Path.Combine(root, below);
        bool removed = Cgroup2.Remove(path);
        try { Cgroup2.Remove(System.IO.Path.GetDirectoryName(path)!); }
        catch (KernelException e) when (e.ErrorCode is Errno.EBUSY or Errno.ENOTEMPTY) { } // other routes still use it
        return removed;
    }
}
