using Via.Kernel.Bpf;
using Via.Mechanisms.Cgroup;

namespace Via.Mechanisms.Changes;

/// <summary>
/// Attaches the setsockopt guard to a route's cgroup, so that no program in it, root included, can
/// reset its sockets' mark or bind them to another device (DESIGN.md point 10). Like the mark
/// program it lives as long as the cgroup.
/// <param name="DeviceIndex">IFACE's index: IP_UNICAST_IF/IPV6_UNICAST_IF may name it, and no other.</param>
/// </summary>
public sealed record AttachSetsockoptGuard(string CgroupPath, int DeviceIndex) : HostChange
{
    public override string Command => $"bpftool cgroup attach {CgroupPath} setsockopt <{SocketMarkProgram.GuardName}: EPERM for SO_MARK, SO_BINDTODEVICE, SO_BINDTOIFINDEX, SO_DONTROUTE, IP(V6)_UNICAST_IF other than ifindex {DeviceIndex}> multi";
    public override string UndoCommand => $"bpftool cgroup detach {CgroupPath} setsockopt name {SocketMarkProgram.GuardName}";

    public static readonly ChangeCodec Codec = new("setsockopt-guard", c => new AttachSetsockoptGuard(JsonFields.Need(c, "cgroup"), c.GetProperty("ifindex").GetInt32()));

    public override string Kind => Codec.Kind;

    public override void Write(System.Text.Json.Utf8JsonWriter w)
    {
        w.WriteString("cgroup", CgroupPath);
        w.WriteNumber("ifindex", DeviceIndex);
    }

    public override HostChange? ForDevice(int index) => this with { DeviceIndex = index };

    /// <summary>Attaches the guard, in place of one for an earlier index of IFACE (re-created: a new index) if there is one.</summary>
    public override void Apply(Host host) =>
        CgroupPrograms.Replace(CgroupPath, BpfProgType.CgroupSockopt, BpfAttachType.CgroupSetsockopt, SocketMarkProgram.GuardSetsockopt(DeviceIndex), SocketMarkProgram.GuardName);

    public override bool Undo(Host host) =>
        CgroupPrograms.DetachNamed(CgroupPaths.Resolve(CgroupPath), BpfAttachType.CgroupSetsockopt, SocketMarkProgram.GuardName);
}
