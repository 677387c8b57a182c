using System.Runtime.InteropServices;
using System.Text;
using Via.Kernel.Interop;

namespace Via.Kernel.Bpf;

public enum BpfProgType : uint { CgroupSkb = 8, CgroupSock = 9, CgroupSockAddr = 18, CgroupSockopt = 25 }

public enum BpfAttachType : uint { CgroupInetIngress = 0, CgroupInetEgress = 1, CgroupInetSockCreate = 2, CgroupInet6Connect = 11, CgroupSetsockopt = 22 }

public enum BpfMapType : uint { Hash = 1, Array = 2, PerCpuArray = 6 }

/// <summary>
/// The one choke point for the bpf() syscall: errno wrapped with the operation, EAGAIN retried on
/// program load, and the verifier log kept when a load is refused.
/// </summary>
public static unsafe class BpfSyscall
{
    private const int CmdMapCreate = 0, CmdMapLookupElem = 1, CmdMapUpdateElem = 2, CmdMapDeleteElem = 3, CmdProgLoad = 5, CmdProgAttach = 8, CmdProgDetach = 9,
        CmdProgGetFdById = 13, CmdMapGetFdById = 14, CmdObjGetInfoByFd = 15, CmdProgQuery = 16;

    /// <summary>BPF_F_ALLOW_MULTI: our program runs alongside any other on the same cgroup.</summary>
    public const uint AllowMulti = 2;

    private static readonly nint SyscallNumber = RuntimeInformation.ProcessArchitecture switch
    {
        Architecture.X64 => 321,
        Architecture.Arm64 => 280,
        var a => throw new PlatformNotSupportedException($"bpf(): syscall number unknown on {a}"),
    };

    private static int Call<T>(int cmd, ref T attr) where T : unmanaged
    {
        fixed (T* p = &attr)
            return (int)Libc.syscall3(SyscallNumber, cmd, (nint)p, sizeof(T));
    }

    /// <summary>Loads a program. On refusal, loads again with a log and puts the verifier's last lines in the error.</summary>
    public static SafeFd LoadProgram(BpfProgType type, BpfAttachType expectedAttach, IReadOnlyList<Instruction> program, string name)
    {
        byte[] insns = Asm.Encode(program);
        byte[] license = "GPL\0"u8.ToArray();
        fixed (byte* pInsns = insns, pLicense = license)
        {
            var attr = new ProgLoadAttr
            {
                ProgType = (uint)type,
                InsnCount = (uint)program.Count,
                Insns = (ulong)pInsns,
                License = (ulong)pLicense,
                ExpectedAttachType = (uint)expectedAttach,
            };
            byte[] nameBytes = Encoding.ASCII.GetBytes(name);
            for (int i = 0; i < Math.Min(nameBytes.Length, 15); i++) attr.ProgName[i] = nameBytes[i];

            int fd = -1, errno = 0;
            for (int attempt = 0; attempt < 5; attempt++)
            {
                fd = Call(CmdProgLoad, ref attr);
                if (fd >= 0) return new SafeFd(fd);
                errno = Marshal.GetLastPInvokeError();
                if (errno != Errno.EAGAIN) break;
            }
            string? log = null;
            if (errno is Errno.EINVAL or Errno.EACCES)
            {
                var buffer = new byte[1 << 16];
                fixed (byte* pLog = buffer)
                {
                    attr.LogLevel = 1; attr.LogSize = (uint)buffer.Length; attr.LogBuf = (ulong)pLog;
                    int again = Call(CmdProgLoad, ref attr);
                    if (again >= 0) return new SafeFd(again);
                }
                log = Summarize(Encoding.ASCII.GetString(buffer).TrimEnd('\0'));
            }
            throw new KernelException("bpf(BPF_PROG_LOAD)", $"program {name}", errno, log);
        }
    }

    private static string Summarize(string log)
    {
        var lines = log.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        return "verifier: " + string.Join(" | ", lines.Skip(Math.Max(0, lines.Length - 3)));
    }

    /// <summary>BPF_PROG_ATTACH: attaches a program to a cgroup (it stays until detached or the cgroup is released).</summary>
    public static void Attach(SafeFd cgroup, SafeFd program, BpfAttachType type, uint flags, string cgroupPath)
    {
        var attr = new ProgAttachAttr { TargetFd = (uint)cgroup.Value, AttachBpfFd = (uint)program.Value, AttachType = (uint)type, AttachFlags = flags };
        if (Call(CmdProgAttach, ref attr) < 0) throw Errno.Last($"bpf(BPF_PROG_ATTACH, {type})", cgroupPath);
    }

    /// <summary>BPF_PROG_DETACH of one program; ENOENT (already gone) is success.</summary>
    public static void Detach(SafeFd cgroup, SafeFd program, BpfAttachType type, string cgroupPath)
    {
        var attr = new ProgAttachAttr { TargetFd = (uint)cgroup.Value, AttachBpfFd = (uint)program.Value, AttachType = (uint)type };
        if (Call(CmdProgDetach, ref attr) < 0 && Marshal.GetLastPInvokeError() != Errno.ENOENT)
            throw Errno.Last($"bpf(BPF_PROG_DETACH, {type})", cgroupPath);
    }

    /// <summary>BPF_PROG_QUERY: ids of the programs attached directly to a cgroup for one hook.</summary>
    public static uint[] Query(SafeFd cgroup, BpfAttachType type, string cgroupPath)
    {
        var ids = new uint[64];
        fixed (uint* p = ids)
        {
            var attr = new ProgQueryAttr { TargetFd = (uint)cgroup.Value, AttachType = (uint)type, ProgIds = (ulong)p, ProgCount = (uint)ids.Length };
            if (Call(CmdProgQuery, ref attr) < 0) throw Errno.Last($"bpf(BPF_PROG_QUERY, {type})", cgroupPath);
            return ids[..(int)attr.ProgCount];
        }
    }

    /// <summary>BPF_PROG_GET_FD_BY_ID; null when the program is already gone.</summary>
    public static SafeFd? OpenProgram(uint id) => OpenById(CmdProgGetFdById, id, "bpf(BPF_PROG_GET_FD_BY_ID)", $"program id {id}");

    /// <summary>BPF_MAP_GET_FD_BY_ID; null when the map is already gone.</summary>
    public static SafeFd? OpenMap(uint id) => OpenById(CmdMapGetFdById, id, "bpf(BPF_MAP_GET_FD_BY_ID)", $"map id {id}");

    private static SafeFd? OpenById(int cmd, uint id, string operation, string what)
    {
        var attr = new GetFdByIdAttr { Id = id };
        int fd = Call(cmd, ref attr);
        if (fd >= 0) return new SafeFd(fd);
        if (Marshal.GetLastPInvokeError() == Errno.ENOENT) return null;
        throw Errno.Last(operation, what);
    }

    /// <summary>The program's name as loaded (bpf_prog_info.name).</summary>
    public static string ProgramName(SafeFd program)
    {
        var info = new ProgInfo();
        var attr = new GetInfoAttr { BpfFd = (uint)program.Value, InfoLen = (uint)sizeof(ProgInfo), Info = (ulong)&info };
        if (Call(CmdObjGetInfoByFd, ref attr) < 0) throw Errno.Last("bpf(BPF_OBJ_GET_INFO_BY_FD)", $"fd {program.Value}");
        return Marshal.PtrToStringUTF8((nint)info.Name) ?? "";
    }

    /// <summary>BPF_MAP_CREATE of a map with 4-byte keys.</summary>
    public static SafeFd CreateMap(BpfMapType type, uint valueSize, uint maxEntries, string name) => CreateMap(type, 4, valueSize, maxEntries, name);

    /// <summary>BPF_MAP_CREATE.</summary>
    public static SafeFd CreateMap(BpfMapType type, uint keySize, uint valueSize, uint maxEntries, string name)
    {
        var attr = new MapCreateAttr { MapType = (uint)type, KeySize = keySize, ValueSize = valueSize, MaxEntries = maxEntries };
        byte[] nameBytes = Encoding.ASCII.GetBytes(name);
        for (int i = 0; i < Math.Min(nameBytes.Length, 15); i++) attr.MapName[i] = nameBytes[i];
        int fd = Call(CmdMapCreate, ref attr);
        if (fd < 0) throw Errno.Last("bpf(BPF_MAP_CREATE)", $"map {name}");
        return new SafeFd(fd);
    }

    /// <summary>
    /// BPF_MAP_LOOKUP_ELEM of a per-CPU map's entry: <paramref name="values"/> receives one value per
    /// possible CPU, each rounded up to 8 bytes (the kernel's layout for per-CPU values).
    /// </summary>
    public static void LookupPerCpu(SafeFd map, uint key, Span<byte> values, string what)
    {
        fixed (byte* v = values)
        {
            var attr = new MapElemAttr { MapFd = (uint)map.Value, Key = (ulong)&key, Value = (ulong)v };
            if (Call(CmdMapLookupElem, ref attr) < 0) throw Errno.Last("bpf(BPF_MAP_LOOKUP_ELEM)", what);
        }
    }

    /// <summary>BPF_MAP_UPDATE_ELEM (BPF_ANY: made or replaced). <paramref name="key"/> and <paramref name="value"/> are the map's sizes.</summary>
    public static void UpdateElement(SafeFd map, ReadOnlySpan<byte> key, ReadOnlySpan<byte> value, string what)
    {
        fixed (byte* k = key, v = value)
        {
            var attr = new MapElemAttr { MapFd = (uint)map.Value, Key = (ulong)k, Value = (ulong)v };
            if (Call(CmdMapUpdateElem, ref attr) < 0) throw Errno.Last("bpf(BPF_MAP_UPDATE_ELEM)", what);
        }
    }

    /// <summary>BPF_MAP_DELETE_ELEM; false when the key was not there.</summary>
    public static bool DeleteElement(SafeFd map, ReadOnlySpan<byte> key, string what)
    {
        fixed (byte* k = key)
        {
            var attr = new MapElemAttr { MapFd = (uint)map.Value, Key = (ulong)k };
            if (Call(CmdMapDeleteElem, ref attr) >= 0) return true;
            if (Marshal.GetLastPInvokeError() == Errno.ENOENT) return false;
            throw Errno.Last("bpf(BPF_MAP_DELETE_ELEM)", what);
        }
    }

    /// <summary>BPF_MAP_LOOKUP_ELEM into <paramref name="value"/>; false when the key is not there.</summary>
    public static bool LookupElement(SafeFd map, ReadOnlySpan<byte> key, Span<byte> value, string what)
    {
        fixed (byte* k = key, v = value)
        {
            var attr = new MapElemAttr { MapFd = (uint)map.Value, Key = (ulong)k, Value = (ulong)v };
            if (Call(CmdMapLookupElem, ref attr) >= 0) return true;
            if (Marshal.GetLastPInvokeError() == Errno.ENOENT) return false;
            throw Errno.Last("bpf(BPF_MAP_LOOKUP_ELEM)", what);
        }
    }

    /// <summary>The ids of the maps a loaded program uses (bpf_prog_info.map_ids).</summary>
    public static uint[] ProgramMapIds(SafeFd program)
    {
        var ids = new uint[8];
        fixed (uint* p = ids)
        {
            var info = new ProgInfo { NrMapIds = (uint)ids.Length, MapIds = (ulong)p };
            var attr = new GetInfoAttr { BpfFd = (uint)program.Value, InfoLen = (uint)sizeof(ProgInfo), Info = (ulong)&info };
            if (Call(CmdObjGetInfoByFd, ref attr) < 0) throw Errno.Last("bpf(BPF_OBJ_GET_INFO_BY_FD)", $"fd {program.Value}");
            return ids[..(int)Math.Min(info.NrMapIds, (uint)ids.Length)];
        }
    }

    /// <summary>The map's name as created (bpf_map_info.name).</summary>
    public static string MapName(SafeFd map)
    {
        var info = new MapInfo();
        var attr = new GetInfoAttr { BpfFd = (uint)map.Value, InfoLen = (uint)sizeof(MapInfo), Info = (ulong)&info };
        if (Call(CmdObjGetInfoByFd, ref attr) < 0) throw Errno.Last("bpf(BPF_OBJ_GET_INFO_BY_FD)", $"fd {map.Value}");
        return Marshal.PtrToStringUTF8((nint)info.Name) ?? "";
    }

    /// <summary>How many CPUs the kernel may ever bring up (/sys/devices/system/cpu/possible): the
    /// number of values a per-CPU map holds per entry.</summary>
    public static int PossibleCpus { get; } = CountPossibleCpus();

    private static int CountPossibleCpus()
    {
        // "0-3" or "0,2-5": the kernel copies one value per possible CPU (for_each_possible_cpu),
        // so count the CPUs the ranges name, as libbpf's libbpf_num_possible_cpus does.
        string text = File.ReadAllText("/sys/devices/system/cpu/possible").Trim();
        int count = 0;
        foreach (var part in text.Split(',', StringSplitOptions.RemoveEmptyEntries))
        {
            var bounds = part.Split('-');
            int first = int.Parse(bounds[0], System.Globalization.CultureInfo.InvariantCulture);
            int last = int.Parse(bounds[^1], System.Globalization.CultureInfo.InvariantCulture);
            count += last - first + 1;
        }
        return count;
    }
}
