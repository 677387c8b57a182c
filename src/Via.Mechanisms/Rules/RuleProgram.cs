using System.Text;
using Via.Kernel.Bpf;
using static Via.Kernel.Bpf.Register;

namespace Via.Mechanisms.Rules;

/// <summary>
/// The eBPF program of a route's user, group and comm rules (pure: instruction lists and map keys;
/// <see cref="Changes.AttachRuleProgram"/> loads and attaches it). One per route, attached to the root
/// of the cgroup2 hierarchy so that it sees every socket of the host, whoever started the process;
/// the rules themselves are entries of its three hash maps, so adding or removing one is a map update.
/// </summary>
public static class RuleProgram
{
    /// <summary>Name the kernel shows for it (bpftool prog show); via's tag on it.</summary>
    public const string Name = "via_rule";

    /// <summary>How many rules of one kind a route can have.</summary>
    public const uint MaxEntries = 1024;

    /// <summary>The comm key: the kernel's 16-byte task comm, zero-padded.</summary>
    public const int CommKeySize = 16;

    /// <summary>Its three maps, one per selector kind: the last letter of each map's name.</summary>
    public static char MapLetter(SelectorKind kind) => kind switch
    {
        SelectorKind.User => 'u',
        SelectorKind.Group => 'g',
        SelectorKind.Comm => 'c',
        _ => throw new ArgumentException($"a {RuleSelector.KindName(kind)} rule is not the program's", nameof(kind)),
    };

    public static readonly SelectorKind[] MapKinds = [SelectorKind.User, SelectorKind.Group, SelectorKind.Comm];

    public static uint KeySize(SelectorKind kind) => kind == SelectorKind.Comm ? (uint)CommKeySize : 4u;

    /// <summary>The map key of a rule: the uid or gid (4 bytes, host order), or the comm zero-padded to 16 bytes.</summary>
    public static byte[] Key(SelectorKind kind, string value, uint? id)
    {
        if (kind == SelectorKind.Comm)
        {
            var key = new byte[CommKeySize];
            int n = Encoding.UTF8.GetBytes(value, key);
            if (n > RuleSelector.CommLength) throw new ArgumentException($"comm '{value}' is longer than {RuleSelector.CommLength} bytes", nameof(value));
            return key;
        }
        return BitConverter.GetBytes(id ?? throw new ArgumentException($"a {RuleSelector.KindName(kind)} rule needs its resolved id", nameof(id)));
    }

    /// <summary>
    /// BPF_CGROUP_INET_SOCK_CREATE at the hierarchy's root: marks a new socket with the route's mark
    /// when (1) it has no mark yet: the programs of deeper cgroups run first (kernel/bpf/cgroup.c
    /// compute_effective_progs walks from the socket's cgroup up to the root), so a program already on
    /// a route of 'via run' or 'via attach' keeps its own; (2) it is made in the network namespace the
    /// rule was made in (bpf_get_netns_cookie: a cookie is never reused, unlike an inode): elsewhere the
    /// mark would mean nothing, or something else; (3) the creating task's uid, gid or comm is a key of
    /// the uid, gid or comm map. The ids are the task's real ones (bpf_get_current_uid_gid). Every socket
    /// is allowed: the program only tags.
    /// <code>
    /// r6 = r1
    /// r2 = ctx->mark; if r2 != 0 goto allow
    /// r1 = r6; call get_netns_cookie; r2 = COOKIE; if r0 != r2 goto allow
    /// call get_current_uid_gid; r7 = r0
    /// *(u32 *)(r10 - 4) = r7;  if lookup(uid_map, r10 - 4) goto mark
    /// r7 >>= 32; *(u32 *)(r10 - 4) = r7; if lookup(gid_map, r10 - 4) goto mark
    /// call get_current_comm(r10 - 24, 16); if lookup(comm_map, r10 - 24) goto mark
    /// goto allow
    /// mark:  r2 = MARK; ctx->mark = r2
    /// allow: r0 = 1; exit
    /// </code>
    /// </summary>
    public static Instruction[] Instructions(uint mark, ulong netnsCookie, int uidMapFd, int gidMapFd, int commMapFd) =>
    [
        Asm.Mov.Reg(R6, R1),
        Asm.LoadMem(R2, R6, BpfSockField.Mark, Size.Word),
        Asm.JumpIf(JumpOp.NotEqual, R2, 0, "allow"),
        Asm.Mov.Reg(R1, R6),
        Asm.Call(BpfHelper.GetNetnsCookie),
        .. Asm.LoadImm64(R2, netnsCookie),
        Asm.JumpIfReg(JumpOp.NotEqual, R0, R2, "allow"),
        Asm.Call(BpfHelper.GetCurrentUidGid),
        Asm.Mov.Reg(R7, R0),
        Asm.StoreMem(R10, -4, R7, Size.Word),
        .. Lookup(uidMapFd, -4),
        Asm.Rsh.Imm(R7, 32),
        Asm.StoreMem(R10, -4, R7, Size.Word),
        .. Lookup(gidMapFd, -4),
        Asm.Mov.Reg(R1, R10),
        Asm.Add.Imm(R1, -24),
        Asm.Mov.Imm(R2, CommKeySize),
        Asm.Call(BpfHelper.GetCurrentComm),
        .. Lookup(commMapFd, -24),
        Asm.Jump("allow"),
        Asm.Mov.Imm(R2, unchecked((int)mark)).WithSymbol("mark"),
        Asm.StoreMem(R6, BpfSockField.Mark, R2, Size.Word),
        Asm.Mov.Imm(R0, 1).WithSymbol("allow"),
        Asm.Return(),
    ];

    /// <summary>if (map_lookup_elem(map, r10 + keyOffset)) goto mark.</summary>
    private static Instruction[] Lookup(int mapFd, short keyOffset) =>
    [
        Asm.Mov.Reg(R2, R10),
        Asm.Add.Imm(R2, keyOffset),
        .. Asm.LoadMapFd(R1, mapFd),
        Asm.Call(BpfHelper.MapLookupElem),
        Asm.JumpIf(JumpOp.NotEqual, R0, 0, "mark"),
    ];
}
