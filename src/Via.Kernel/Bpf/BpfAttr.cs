using System.Runtime.InteropServices;

namespace Via.Kernel.Bpf;

// Views of union bpf_attr (include/uapi/linux/bpf.h), one struct per command used.
// Offsets are checked against the C header by LayoutTests.

/// <summary>bpf_attr for BPF_PROG_LOAD.</summary>
[StructLayout(LayoutKind.Explicit, Size = 128)]
internal unsafe struct ProgLoadAttr
{
    [FieldOffset(0)] public uint ProgType;
    [FieldOffset(4)] public uint InsnCount;
    [FieldOffset(8)] public ulong Insns;
    [FieldOffset(16)] public ulong License;
    [FieldOffset(24)] public uint LogLevel;
    [FieldOffset(28)] public uint LogSize;
    [FieldOffset(32)] public ulong LogBuf;
    [FieldOffset(40)] public uint KernVersion;
    [FieldOffset(44)] public uint ProgFlags;
    [FieldOffset(48)] public fixed byte ProgName[16];
    [FieldOffset(64)] public uint ProgIfindex;
    [FieldOffset(68)] public uint ExpectedAttachType;
}

/// <summary>bpf_attr for BPF_PROG_ATTACH and BPF_PROG_DETACH.</summary>
[StructLayout(LayoutKind.Explicit, Size = 20)]
internal struct ProgAttachAttr
{
    [FieldOffset(0)] public uint TargetFd;
    [FieldOffset(4)] public uint AttachBpfFd;
    [FieldOffset(8)] public uint AttachType;
    [FieldOffset(12)] public uint AttachFlags;
    [FieldOffset(16)] public uint ReplaceBpfFd;
}

/// <summary>bpf_attr for BPF_PROG_QUERY.</summary>
[StructLayout(LayoutKind.Explicit, Size = 32)]
internal struct ProgQueryAttr
{
    [FieldOffset(0)] public uint TargetFd;
    [FieldOffset(4)] public uint AttachType;
    [FieldOffset(8)] public uint QueryFlags;
    [FieldOffset(12)] public uint AttachFlags;
    [FieldOffset(16)] public ulong ProgIds;
    [FieldOffset(24)] public uint ProgCount;
}

/// <summary>bpf_attr for BPF_PROG_GET_FD_BY_ID.</summary>
[StructLayout(LayoutKind.Explicit, Size = 12)]
internal struct GetFdByIdAttr
{
    [FieldOffset(0)] public uint Id;
    [FieldOffset(4)] public uint NextId;
    [FieldOffset(8)] public uint OpenFlags;
}

/// <summary>bpf_attr for BPF_OBJ_GET_INFO_BY_FD.</summary>
[StructLayout(LayoutKind.Explicit, Size = 16)]
internal struct GetInfoAttr
{
    [FieldOffset(0)] public uint BpfFd;
    [FieldOffset(4)] public uint InfoLen;
    [FieldOffset(8)] public ulong Info;
}

/// <summary>The leading part of struct bpf_prog_info.</summary>
[StructLayout(LayoutKind.Explicit, Size = 80)]
internal unsafe struct ProgInfo
{
    [FieldOffset(0)] public uint Type;
    [FieldOffset(4)] public uint Id;
    [FieldOffset(52)] public uint NrMapIds;
    [FieldOffset(56)] public ulong MapIds;
    [FieldOffset(64)] public fixed byte Name[16];
}

/// <summary>bpf_attr for BPF_MAP_CREATE.</summary>
[StructLayout(LayoutKind.Explicit, Size = 48)]
internal unsafe struct MapCreateAttr
{
    [FieldOffset(0)] public uint MapType;
    [FieldOffset(4)] public uint KeySize;
    [FieldOffset(8)] public uint ValueSize;
    [FieldOffset(12)] public uint MaxEntries;
    [FieldOffset(16)] public uint MapFlags;
    [FieldOffset(28)] public fixed byte MapName[16];
}

/// <summary>bpf_attr for BPF_MAP_LOOKUP_ELEM and BPF_MAP_UPDATE_ELEM.</summary>
[StructLayout(LayoutKind.Explicit, Size = 32)]
internal struct MapElemAttr
{
    [FieldOffset(0)] public uint MapFd;
    [FieldOffset(8)] public ulong Key;
    [FieldOffset(16)] public ulong Value;
    [FieldOffset(24)] public ulong Flags;
}

/// <summary>The leading part of struct bpf_map_info.</summary>
[StructLayout(LayoutKind.Explicit, Size = 40)]
internal unsafe struct MapInfo
{
    [FieldOffset(0)] public uint Type;
    [FieldOffset(4)] public uint Id;
    [FieldOffset(8)] public uint KeySize;
    [FieldOffset(12)] public uint ValueSize;
    [FieldOffset(16)] public uint MaxEntries;
    [FieldOffset(24)] public fixed byte Name[16];
}

/// <summary>Offsets in struct __sk_buff, the context of BPF_PROG_TYPE_CGROUP_SKB programs.</summary>
public static class SkBuffField
{
    /// <summary>ifindex: on egress, the device the packet is about to leave by (skb->dev).</summary>
    public const short Len = 0, IfIndex = 40, GsoSegs = 164;
}

/// <summary>Offsets in struct bpf_sock_addr, the context of BPF_PROG_TYPE_CGROUP_SOCK_ADDR programs.</summary>
public static class BpfSockAddrField
{
    public const short UserFamily = 0, UserIp4 = 4, UserIp6 = 8, UserPort = 24;
}

/// <summary>Offsets in struct bpf_sock, the context of BPF_PROG_TYPE_CGROUP_SOCK programs.</summary>
public static class BpfSockField
{
    public const short BoundDevIf = 0, Family = 4, Type = 8, Protocol = 12, Mark = 16, Priority = 20;
}

/// <summary>Offsets in struct bpf_sockopt, the context of BPF_PROG_TYPE_CGROUP_SOCKOPT programs.</summary>
public static class BpfSockoptField
{
    public const short Sk = 0, OptVal = 8, OptValEnd = 16, Level = 24, OptName = 28, OptLen = 32, RetVal = 36;
}
