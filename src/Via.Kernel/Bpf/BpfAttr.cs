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
    [FieldOffset(64)] public fixed byte Name[16];
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
