using Via.Kernel.Bpf;
using Via.Mechanisms.Cgroup;
using Xunit;
using static Via.Kernel.Bpf.Register;

namespace Via.Tests.Unit;

/// <summary>
/// The eBPF assembler against hand-written encodings. Every expected byte string is derived from
/// include/uapi/linux/bpf_common.h and bpf.h, not from the implementation:
/// <code>
///   struct bpf_insn { __u8 code; __u8 dst_reg:4, src_reg:4; __s16 off; __s32 imm; }  (little endian)
///   classes: BPF_LD 0x00, BPF_LDX 0x01, BPF_ST 0x02, BPF_STX 0x03, BPF_JMP 0x05, BPF_ALU64 0x07
///   sizes:   BPF_W 0x00, BPF_H 0x08, BPF_B 0x10, BPF_DW 0x18;  modes BPF_IMM 0x00, BPF_MEM 0x60, BPF_ATOMIC 0xc0
///   source:  BPF_K 0x00, BPF_X 0x08
///   class BPF_ALU 0x04 (32-bit); BPF_END 0xd0 with BPF_TO_BE 0x08 (imm: the width)
///   ops:     BPF_ADD 0x00, BPF_LSH 0x60, BPF_RSH 0x70, BPF_AND 0x50, BPF_MOV 0xb0; BPF_JLT 0xa0; BPF_JA 0x00, BPF_JEQ 0x10, BPF_JGT 0x20, BPF_JGE 0x30,
///            BPF_JNE 0x50, BPF_CALL 0x80, BPF_EXIT 0x90; BPF_PSEUDO_MAP_FD (src_reg of a map load) 1
/// </code>
/// Byte 1 holds dst in the low nibble and src in the high nibble.
/// </summary>
public class AsmTests
{
    // Each case: the instruction under test is first; jumps target label "out" on the third
    // instruction, so their offset is 1 (counted from the instruction after the jump).
    private static readonly Dictionary<string, Instruction> Builders = new()
    {
        ["r0 = 1"] = Asm.Mov.Imm(R0, 1),
        ["r3 = -1"] = Asm.Mov.Imm(R3, -1),
        ["r9 = 0x12345678"] = Asm.Mov.Imm(R9, 0x12345678),
        ["r6 = r1"] = Asm.Mov.Reg(R6, R1),
        ["r1 = r10"] = Asm.Mov.Reg(R1, R10),
        ["*(u32 *)(r1 + 16) = r2"] = Asm.StoreMem(R1, 16, R2, Size.Word),
        ["*(u16 *)(r1 + 2) = r3"] = Asm.StoreMem(R1, 2, R3, Size.Half),
        ["*(u8 *)(r4 + 0) = r5"] = Asm.StoreMem(R4, 0, R5, Size.Byte),
        ["*(u64 *)(r10 - 8) = r1"] = Asm.StoreMem(R10, -8, R1, Size.DWord),
        ["*(u32 *)(r10 - 4) = 7"] = Asm.StoreImm(R10, -4, 7, Size.Word),
        ["*(u16 *)(r10 - 2) = 0x1234"] = Asm.StoreImm(R10, -2, 0x1234, Size.Half),
        ["*(u8 *)(r10 - 1) = 255"] = Asm.StoreImm(R10, -1, 255, Size.Byte),
        ["*(u64 *)(r10 - 16) = -2"] = Asm.StoreImm(R10, -16, -2, Size.DWord),
        ["r0 = *(u32 *)(r1 + 16)"] = Asm.LoadMem(R0, R1, 16, Size.Word),
        ["r2 = *(u16 *)(r1 + 4)"] = Asm.LoadMem(R2, R1, 4, Size.Half),
        ["r3 = *(u8 *)(r6 + 24)"] = Asm.LoadMem(R3, R6, 24, Size.Byte),
        ["r7 = *(u64 *)(r1 + 8)"] = Asm.LoadMem(R7, R1, 8, Size.DWord),
        ["if r2 == 10 goto out"] = Asm.JumpIf(JumpOp.Equal, R2, 10, "out"),
        ["if r2 > 1 goto out"] = Asm.JumpIf(JumpOp.Greater, R2, 1, "out"),
        ["if r3 >= 0x100 goto out"] = Asm.JumpIf(JumpOp.GreaterOrEqual, R3, 0x100, "out"),
        ["if r0 != -1 goto out"] = Asm.JumpIf(JumpOp.NotEqual, R0, -1, "out"),
        ["if r1 == r2 goto out"] = Asm.JumpIfReg(JumpOp.Equal, R1, R2, "out"),
        ["if r4 > r5 goto out"] = Asm.JumpIfReg(JumpOp.Greater, R4, R5, "out"),
        ["if r6 >= r7 goto out"] = Asm.JumpIfReg(JumpOp.GreaterOrEqual, R6, R7, "out"),
        ["if r8 != r9 goto out"] = Asm.JumpIfReg(JumpOp.NotEqual, R8, R9, "out"),
        ["goto out"] = Asm.Jump("out"),
        ["exit"] = Asm.Return(),
        ["r2 += -4"] = Asm.Add.Imm(R2, -4),
        ["r0 += r7"] = Asm.Add.Reg(R0, R7),
        ["r2 &= 0xc0ff"] = Asm.And.Imm(R2, 0xc0ff),
        ["call map_lookup_elem"] = Asm.Call(BpfHelper.MapLookupElem),
        ["call setsockopt"] = Asm.Call(BpfHelper.SetSockopt),
        ["call skb_load_bytes"] = Asm.Call(BpfHelper.SkbLoadBytes),
        ["w3 = 0xc800000a"] = Asm.Mov32.Imm(R3, unchecked((int)0xc800000a)),
        ["r9 >>= 4"] = Asm.Rsh.Imm(R9, 4),
        ["r2 <<= 2"] = Asm.Lsh.Imm(R2, 2),
        ["r8 = be16 r8"] = Asm.ToBigEndian(R8, 16),
        ["if r8 < 3306 goto out"] = Asm.JumpIf(JumpOp.Less, R8, 3306, "out"),
        ["lock *(u64 *)(r0 + 8) += r3"] = Asm.AtomicAdd(R0, 8, R3, Size.DWord),
        ["lock *(u32 *)(r1 + 0) += r2"] = Asm.AtomicAdd(R1, 0, R2, Size.Word),
        ["r7 >>= 32"] = Asm.Rsh.Imm(R7, 32),
        ["call get_current_uid_gid"] = Asm.Call(BpfHelper.GetCurrentUidGid),
        ["call get_current_comm"] = Asm.Call(BpfHelper.GetCurrentComm),
        ["call get_netns_cookie"] = Asm.Call(BpfHelper.GetNetnsCookie),
    };

    public static TheoryData<string, string> Encodings => new()
    {
        // ALU64 | MOV | K = 0xb7; ALU64 | MOV | X = 0xbf
        { "r0 = 1", "b7 00 0000 01000000" },
        { "r3 = -1", "b7 03 0000 ffffffff" },
        { "r9 = 0x12345678", "b7 09 0000 78563412" },
        { "r6 = r1", "bf 16 0000 00000000" },
        { "r1 = r10", "bf a1 0000 00000000" },
        // STX | MEM | size: W 0x63, H 0x6b, B 0x73, DW 0x7b
        { "*(u32 *)(r1 + 16) = r2", "63 21 1000 00000000" },
        { "*(u16 *)(r1 + 2) = r3", "6b 31 0200 00000000" },
        { "*(u8 *)(r4 + 0) = r5", "73 54 0000 00000000" },
        { "*(u64 *)(r10 - 8) = r1", "7b 1a f8ff 00000000" },
        // ST | MEM | size: W 0x62, H 0x6a, B 0x72, DW 0x7a
        { "*(u32 *)(r10 - 4) = 7", "62 0a fcff 07000000" },
        { "*(u16 *)(r10 - 2) = 0x1234", "6a 0a feff 34120000" },
        { "*(u8 *)(r10 - 1) = 255", "72 0a ffff ff000000" },
        { "*(u64 *)(r10 - 16) = -2", "7a 0a f0ff feffffff" },
        // LDX | MEM | size: W 0x61, H 0x69, B 0x71, DW 0x79
        { "r0 = *(u32 *)(r1 + 16)", "61 10 1000 00000000" },
        { "r2 = *(u16 *)(r1 + 4)", "69 12 0400 00000000" },
        { "r3 = *(u8 *)(r6 + 24)", "71 63 1800 00000000" },
        { "r7 = *(u64 *)(r1 + 8)", "79 17 0800 00000000" },
        // JMP | op | K: JEQ 0x15, JGT 0x25, JGE 0x35, JNE 0x55 (offset 1)
        { "if r2 == 10 goto out", "15 02 0100 0a000000" },
        { "if r2 > 1 goto out", "25 02 0100 01000000" },
        { "if r3 >= 0x100 goto out", "35 03 0100 00010000" },
        { "if r0 != -1 goto out", "55 00 0100 ffffffff" },
        // JMP | op | X: JEQ 0x1d, JGT 0x2d, JGE 0x3d, JNE 0x5d
        { "if r1 == r2 goto out", "1d 21 0100 00000000" },
        { "if r4 > r5 goto out", "2d 54 0100 00000000" },
        { "if r6 >= r7 goto out", "3d 76 0100 00000000" },
        { "if r8 != r9 goto out", "5d 98 0100 00000000" },
        // JMP | JA = 0x05; JMP | EXIT = 0x95
        { "goto out", "05 00 0100 00000000" },
        { "exit", "95 00 0000 00000000" },
        // ALU64 | ADD | K = 0x07, | X = 0x0f; ALU64 | AND | K = 0x57
        { "r2 += -4", "07 02 0000 fcffffff" },
        { "r0 += r7", "0f 70 0000 00000000" },
        { "r2 &= 0xc0ff", "57 02 0000 ffc00000" },
        // JMP | CALL = 0x85, imm = enum bpf_func_id (map_lookup_elem 1, setsockopt 49)
        { "call map_lookup_elem", "85 00 0000 01000000" },
        { "call setsockopt", "85 00 0000 31000000" },
        // skb_load_bytes is helper 26
        { "call skb_load_bytes", "85 00 0000 1a000000" },
        // ALU | MOV | K = 0xb4; ALU64 | RSH | K = 0x77, | LSH | K = 0x67; ALU | END | TO_BE = 0xdc; JMP | JLT | K = 0xa5
        { "w3 = 0xc800000a", "b4 03 0000 0a0000c8" },
        { "r9 >>= 4", "77 09 0000 04000000" },
        { "r2 <<= 2", "67 02 0000 02000000" },
        { "r8 = be16 r8", "dc 08 0000 10000000" },
        { "if r8 < 3306 goto out", "a5 08 0100 ea0c0000" },
        // STX | ATOMIC | size: DW 0xdb, W 0xc3; imm = BPF_ADD
        { "lock *(u64 *)(r0 + 8) += r3", "db 30 0800 00000000" },
        { "lock *(u32 *)(r1 + 0) += r2", "c3 21 0000 00000000" },
        // ALU64 | RSH | K = 0x77
        { "r7 >>= 32", "77 07 0000 20000000" },
        // bpf_func_id: get_current_uid_gid 15, get_current_comm 16, get_netns_cookie 122
        { "call get_current_uid_gid", "85 00 0000 0f000000" },
        { "call get_current_comm", "85 00 0000 10000000" },
        { "call get_netns_cookie", "85 00 0000 7a000000" },
    };

    [Fact]
    public void Map_load_is_a_two_slot_64_bit_immediate_naming_the_fd()
    {
        // LD | IMM | DW = 0x18, src_reg = BPF_PSEUDO_MAP_FD (1), imm = the fd; the second slot carries
        // the upper 32 bits of the immediate (zero for an fd).
        byte[] b = Asm.Encode(Asm.LoadMapFd(R1, 7));

        Assert.Equal("18 11 0000 07000000 00 00 0000 00000000", Hex(b));
    }

    [Fact]
    public void A_64_bit_constant_is_a_two_slot_immediate_low_half_first()
    {
        // LD | IMM | DW = 0x18, src_reg 0; the first slot's imm is the low 32 bits, the second's the high.
        Assert.Equal("18 02 0000 10325476 00 00 0000 98badcfe", Hex(Asm.Encode(Asm.LoadImm64(R2, 0xfedcba9876543210))));
    }

    [Fact]
    public void Rule_program_marks_only_unmarked_sockets_of_its_namespace_whose_uid_gid_or_comm_is_a_key()
    {
        var program = Via.Mechanisms.Rules.RuleProgram.Instructions(0x30000, 0x1122334455667788, 11, 12, 13);
        byte[] b = Asm.Encode(program);
        Assert.Equal(program.Length * 8, b.Length);
        // It reads the mark first and leaves a marked socket alone (a deeper cgroup's program ran first).
        Assert.Equal("61 62 1000 00000000", Hex(b[8..16]));
        Assert.Equal("55 02", $"{b[16]:x2} {b[17]:x2}");
        // The namespace's cookie is compared whole (64 bits).
        Assert.Contains("18 02 0000 88776655 00 00 0000 44332211", Hex(b));
        // Three lookups, in the uid, gid and comm maps, by their fds (src_reg 1: a map).
        foreach (int fd in new[] { 11, 12, 13 })
            Assert.Contains($"18 11 0000 {fd:x2}000000", Hex(b));
        // The mark is written once, then every socket is allowed.
        Assert.Equal("b7 02 0000 00000300 63 26 1000 00000000 b7 00 0000 01000000 95 00 0000 00000000", Hex(b[^32..]));
    }

    [Fact]
    public void Rule_map_keys_are_the_id_in_host_order_or_the_comm_zero_padded_to_16_bytes()
    {
        Assert.Equal(BitConverter.GetBytes(1000u), Via.Mechanisms.Rules.RuleProgram.Key(Via.Mechanisms.SelectorKind.User, "alice", 1000));
        var comm = Via.Mechanisms.Rules.RuleProgram.Key(Via.Mechanisms.SelectorKind.Comm, "curl", null);
        Assert.Equal(16, comm.Length);
        Assert.Equal("curl"u8.ToArray(), comm[..4]);
        Assert.All(comm[4..], c => Assert.Equal(0, c));
        Assert.Throws<ArgumentException>(() => Via.Mechanisms.Rules.RuleProgram.Key(Via.Mechanisms.SelectorKind.Group, "staff", null));
    }

    [Fact]
    public void Atomic_add_of_a_byte_is_refused()
    {
        Assert.Throws<ArgumentException>(() => Asm.AtomicAdd(R0, 0, R1, Size.Byte));
    }

    [Theory]
    [MemberData(nameof(Encodings))]
    public void Builder_encodes_to_the_kernel_opcode(string name, string expectedHex)
    {
        var program = new[] { Builders[name], Asm.Mov.Imm(R0, 0), Asm.Return().WithSymbol("out") };

        byte[] encoded = Asm.Encode(program);

        Assert.Equal(24, encoded.Length);
        Assert.Equal(Hex(expectedHex), Hex(encoded[..8]));
    }

    [Fact]
    public void Every_builder_case_has_an_expected_encoding()
    {
        var covered = Encodings.Select(row => (string)row[0]).ToHashSet();
        Assert.Equal(Builders.Keys.Order(), covered.Order());
    }

    [Fact]
    public void Forward_jump_counts_from_the_next_instruction()
    {
        Instruction[] program =
        [
            Asm.JumpIf(JumpOp.Equal, R1, 0, "end"), // 0 -> 3: offset 2
            Asm.Mov.Imm(R0, 1),                     // 1
            Asm.Jump("end"),                        // 2 -> 3: offset 0
            Asm.Return().WithSymbol("end"),         // 3
        ];

        byte[] b = Asm.Encode(program);

        Assert.Equal("15 01 0200 00000000", Hex(b[0..8]));
        Assert.Equal("05 00 0000 00000000", Hex(b[16..24]));
    }

    [Fact]
    public void Backward_jump_has_a_negative_offset()
    {
        Instruction[] program =
        [
            Asm.Mov.Imm(R0, 0).WithSymbol("top"),   // 0
            Asm.Mov.Imm(R1, 2),                     // 1
            Asm.JumpIf(JumpOp.NotEqual, R1, 0, "top"), // 2 -> 0: offset 0 - 2 - 1 = -3
            Asm.Jump("top"),                        // 3 -> 0: offset -4
            Asm.Return(),
        ];

        byte[] b = Asm.Encode(program);

        Assert.Equal("55 01 fdff 00000000", Hex(b[16..24]));
        Assert.Equal("05 00 fcff 00000000", Hex(b[24..32]));
    }

    [Fact]
    public void Jump_to_itself_is_offset_minus_one()
    {
        byte[] b = Asm.Encode([Asm.Jump("self").WithSymbol("self")]);

        Assert.Equal("05 00 ffff 00000000", Hex(b));
    }

    [Fact]
    public void Unknown_label_is_refused_and_named()
    {
        Instruction[] program = [Asm.Mov.Imm(R0, 1), Asm.Jump("nowhere"), Asm.Return().WithSymbol("end")];

        var e = Assert.Throws<ArgumentException>(() => Asm.Encode(program));

        Assert.Contains("'nowhere'", e.Message);
        Assert.Contains("instruction 1", e.Message);
    }

    [Fact]
    public void Duplicate_label_is_refused_and_named()
    {
        Instruction[] program = [Asm.Mov.Imm(R0, 1).WithSymbol("twice"), Asm.Return().WithSymbol("twice")];

        var e = Assert.Throws<ArgumentException>(() => Asm.Encode(program));

        Assert.Contains("'twice'", e.Message);
        Assert.Contains("defined twice", e.Message);
    }

    [Fact]
    public void Jump_beyond_the_16_bit_offset_is_refused_not_wrapped()
    {
        var program = new List<Instruction> { Asm.Jump("far") };
        for (int i = 0; i < short.MaxValue + 1; i++) program.Add(Asm.Mov.Imm(R0, 0));
        program.Add(Asm.Return().WithSymbol("far")); // offset would be 32768

        var e = Record.Exception(() => Asm.Encode(program));

        Assert.True(e is OverflowException or ArgumentException, $"expected a refusal, got {e?.GetType().Name ?? "no exception"}");
    }

    [Fact]
    public void Empty_program_encodes_to_nothing()
    {
        Assert.Empty(Asm.Encode([]));
    }

    [Fact]
    public void Socket_mark_program_is_the_exact_four_instructions()
    {
        byte[] b = Asm.Encode(SocketMarkProgram.SetMark(0x10000));

        // r2 = 0x10000; *(u32 *)(r1 + offsetof(struct bpf_sock, mark) = 16) = r2; r0 = 1; exit
        Assert.Equal(
            "b7 02 0000 00000100 " +
            "63 21 1000 00000000 " +
            "b7 00 0000 01000000 " +
            "95 00 0000 00000000",
            Hex(b));
    }

    [Fact]
    public void Setsockopt_guard_refuses_each_option_and_compares_unicast_if_in_network_order()
    {
        byte[] b = Asm.Encode(SocketMarkProgram.GuardSetsockopt(3));
        string hex = Hex(b);

        // r2 = ctx->level (24); if r2 == SOL_SOCKET (1) goto socket (+3: over the IP and IPv6 tests and a goto)
        Assert.StartsWith("61 12 1800 00000000 15 02 0300 01000000 ", hex);
        // SO_MARK 36, SO_BINDTODEVICE 25, SO_BINDTOIFINDEX 62, SO_DONTROUTE 5: each compared with optname
        foreach (string option in new[] { "24000000", "19000000", "3e000000", "05000000" })
            Assert.Matches($"15 02 [0-9a-f]{{4}} {option}", hex);
        // IP_UNICAST_IF 50 and IPV6_UNICAST_IF 76; ifindex 3 as htonl(3) read little-endian: 0x03000000
        Assert.Matches("15 02 [0-9a-f]{4} 32000000", hex);
        Assert.Matches("15 02 [0-9a-f]{4} 4c000000", hex);
        Assert.Contains("15 02 0200 00000003", hex);
        // ends with deny (r0 = 0) and allow (r0 = 1)
        Assert.EndsWith("b7 00 0000 00000000 95 00 0000 00000000 b7 00 0000 01000000 95 00 0000 00000000", hex);
    }

    [Fact]
    public void Socket_mark_program_keeps_a_high_bit_mark_as_unsigned_bits()
    {
        byte[] b = Asm.Encode(SocketMarkProgram.SetMark(0xff000000));

        Assert.Equal("b7 02 0000 000000ff", Hex(b[..8]));
    }

    /// <summary>Normalizes "b7 00 0000" or raw bytes into one spacing: a byte per pair, instructions 8 bytes apart.</summary>
    private static string Hex(string spaced) => Hex(Convert.FromHexString(spaced.Replace(" ", "")));

    private static string Hex(byte[] bytes)
    {
        var parts = new List<string>();
        for (int i = 0; i < bytes.Length; i += 8)
        {
            var insn = bytes.AsSpan(i, Math.Min(8, bytes.Length - i));
            parts.Add(insn.Length == 8
                ? $"{insn[0]:x2} {insn[1]:x2} {Convert.ToHexStringLower(insn[2..4])} {Convert.ToHexStringLower(insn[4..8])}"
                : Convert.ToHexStringLower(insn));
        }
        return string.Join(' ', parts);
    }
}
