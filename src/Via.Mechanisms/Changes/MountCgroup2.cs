using Via.Kernel.Cgroups;

namespace Via.Mechanisms.Changes;

/// <summary>
/// Mounts cgroup2 where none is visible (inside <c>ip netns exec</c>, which remounts /sys, or on a
/// v1-only host). The mount is left in place: it holds no state, and inside a private mount
/// namespace it disappears with the namespace.
/// </summary>
public sealed record MountCgroup2(string Target) : HostChange
{
    public override string Command => $"mount -t cgroup2 none {Target}";
    public override string UndoCommand => "# cgroup2 mount left in place";

    public static readonly ChangeCodec Codec = new("mount-cgroup2", c => new MountCgroup2(JsonFields.Need(c, "target")));

    public override string Kind => Codec.Kind;

    public override void Write(System.Text.Json.Utf8JsonWriter w) => w.WriteString("target", Target);

    public override void Apply(Host host)
    {
        if (!Cgroup2.FindMounts().Contains(Target)) Cgroup2.Mount(Target);
    }

    public override bool Undo(Host host) => false;
}
