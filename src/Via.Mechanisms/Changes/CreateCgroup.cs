using Via.Kernel;
using Via.Kernel.Cgroups;

namespace Via.Mechanisms.Changes;

/// <summary>
/// A cgroup of via's own: <c>mkdir CGROUP2/via/NAME</c>. Fails if it exists: each is made for one
/// route. The shared parent (via's subtree) is made on demand and removed with its last child.
/// </summary>
public sealed record CreateCgroup(string Path) : HostChange
{
    public override string Command => $"mkdir -p {Path}";
    public override string UndoCommand => $"rmdir {Path}";

    public static readonly ChangeCodec Codec = new("cgroup", c => new CreateCgroup(JsonFields.Need(c, "path")));

    public override string Kind => Codec.Kind;

    public override void Write(System.Text.Json.Utf8JsonWriter w) => w.WriteString("path", Path);

    public override void Apply(Host host)
    {
        string parent = System.IO.Path.GetDirectoryName(Path)!;
        for (int attempt = 0; ; attempt++)
        {
            Cgroup2.Create(parent);
            try
            {
                if (!Cgroup2.Create(Path)) throw new IOException($"cgroup {Path} exists already; run 'via gc' to remove leftovers");
                return;
            }
            catch (KernelException e) when (e.ErrorCode == Errno.ENOENT && attempt < 5)
            {
                // Another via removed the empty parent between our two mkdirs: make it again.
            }
        }
    }

    public override bool Undo(Host host)
    {
        string path = Cgroup.CgroupPaths.Resolve(Path);
        bool removed = Cgroup2.Remove(path);
        string parent = System.IO.Path.GetDirectoryName(path)!;
        try { Cgroup2.Remove(parent); }
        catch (KernelException e) when (e.ErrorCode is Errno.EBUSY or Errno.ENOTEMPTY) { } // other routes still use it
        return removed;
    }
}
