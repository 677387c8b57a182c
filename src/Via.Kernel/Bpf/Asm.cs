using System.Buffers.Binary;

namespace Via.Kernel.Bpf;

/// <summary>eBPF registers. R0 holds the return value, R1 the context on entry, R10 the frame pointer (read-only).</summary>
public enum Register : byte { R0, R1, R2, R3, R4, R5, R6, R7, R8, R9, R10 }

/// <summary>Operand width of a memory access (the BPF_SIZE bits).</summary>
public enum Size : byte { Word = 0x00, Half = 0x08, Byte = 0x10, DWord = 0x18 }

/// <summary>Conditional jump operations (the BPF_OP bits of class JMP).</summary>
public enum JumpOp : byte { Equal = 0x10, Greater = 0x20, GreaterOrEqual = 0x30, NotEqual = 0x50, Less = 0xa0 }

/// <summary>Kernel helper functions a program may call (enum bpf_func_id).</summary>
public enum BpfHelper : int
{
    MapLookupElem = 1,

    /// <summary>(skb, offset, to, len): copies len bytes of the packet from offset (cgroup_skb: from the IP header).</summary>
    SkbLoadBytes = 26,

    /// <summary>u64: the current task's gid &lt;&lt; 32 | uid, as seen from the initial user namespace. These are its real ids
    /// (kernel/bpf/helpers.c reads them with current_uid_gid, i.e. cred-&gt;uid and cred-&gt;gid), not the effective ones.</summary>
    GetCurrentUidGid = 15,

    /// <summary>(buf, size): the current task's comm, zero-padded to size.</summary>
    GetCurrentComm = 16,

    SetSockopt = 49,

    /// <summary>(ctx): the cookie of the network namespace the socket belongs to (Linux 5.7 for sock programs).</summary>
    GetNetnsCookie = 122,
}

/// <summary>
/// One eBPF instruction (struct bpf_insn, 8 bytes). Build with the typed helpers
/// (<see cref="Asm"/>): invalid combinations are not constructible. A jump may name a
/// label; the offset is resolved when the program is encoded.
/// </summary>
public readonly record struct Instruction(byte OpCode, Register Dst, Register Src, short Offset, int Constant)
{
    /// <summary>The label this instruction jumps to, resolved by <see cref="Asm.Encode"/>.</summary>
    public string? Target { get; init; }

    /// <summary>A label naming this instruction as a jump target.</summary>
    public string? Symbol { get; init; }

    public Instruction WithSymbol(string symbol) => this with { Symbol = symbol };

    internal void Write(Span<byte> dst, short offset)
    {
        dst[0] = OpCode;
        dst[1] = (byte)(((byte)Src << 4) | (byte)Dst);
        BinaryPrimitives.WriteInt16LittleEndian(dst[2..], offset);
        BinaryPrimitives.WriteInt32LittleEndian(dst[4..], Constant);
    }
}

/// <summary>
/// A small typed eBPF assembler, in the manner of cilium/ebpf's asm package:
/// <c>Asm.Mov.Imm(R0, 1)</c>, <c>Asm.Return()</c>, jumps by label.
/// </summary>
public static class Asm
{
    // Instruction classes (BPF_CLASS).
    internal const byte ClassLd = 0x00, ClassLdx = 0x01, ClassSt = 0x02, ClassStx = 0x03, ClassAlu = 0x04, ClassJmp = 0x05, ClassAlu64 = 0x07;
    // Modes (BPF_MODE) and sources (BPF_SRC).
    internal const byte ModeImm = 0x00, ModeMem = 0x60, ModeAtomic = 0xc0, SourceImm = 0x00, SourceReg = 0x08;
    // ALU and JMP operations (BPF_OP).
    internal const byte OpAdd = 0x00, OpLsh = 0x60, OpRsh = 0x70, OpAnd = 0x50, OpMov = 0xb0, OpEnd = 0xd0, OpJa = 0x00, OpCall = 0x80, OpExit = 0x90;
    // BPF_END's source bit: BPF_TO_BE (0x08) converts to big endian (a byte swap on a little-endian host).
    internal const byte ToBe = 0x08;
    // src_reg of a 64-bit immediate load whose constant is a map's file descriptor (BPF_PSEUDO_MAP_FD).
    internal const byte PseudoMapFd = 1;

    public static class Mov
    {
        /// <summary>dst = imm (64-bit move of a sign-extended 32-bit constant).</summary>
        public static Instruction Imm(Register dst, int value) => new((byte)(ClassAlu64 | OpMov | SourceImm), dst, Register.R0, 0, value);

        /// <summary>dst = src.</summary>
        public static Instruction Reg(Register dst, Register src) => new((byte)(ClassAlu64 | OpMov | SourceReg), dst, src, 0, 0);
    }

    public static class Mov32
    {
        /// <summary>dst = (u32)imm: a 32-bit move, which zeroes the upper half (a constant with bit 31 set stays positive).</summary>
        public static Instruction Imm(Register dst, int value) => new((byte)(ClassAlu | OpMov | SourceImm), dst, Register.R0, 0, value);
    }

    public static class Lsh
    {
        /// <summary>dst &lt;&lt;= imm (64-bit).</summary>
        public static Instruction Imm(Register dst, int value) => new((byte)(ClassAlu64 | OpLsh | SourceImm), dst, Register.R0, 0, value);
    }

    public static class Rsh
    {
        /// <summary>dst &gt;&gt;= imm (64-bit, logical).</summary>
        public static Instruction Imm(Register dst, int value) => new((byte)(ClassAlu64 | OpRsh | SourceImm), dst, Register.R0, 0, value);
    }

    /// <summary>dst = htobe16/32/64(dst): network byte order read as a number (and the upper bits cleared), on a little-endian host.</summary>
    public static Instruction ToBigEndian(Register dst, int bits) =>
        bits is 16 or 32 or 64
            ? new((byte)(ClassAlu | OpEnd | ToBe), dst, Register.R0, 0, bits)
            : throw new ArgumentException("a byte swap is 16, 32 or 64 bits wide", nameof(bits));

    public static class Add
    {
        /// <summary>dst += imm (64-bit).</summary>
        public static Instruction Imm(Register dst, int value) => new((byte)(ClassAlu64 | OpAdd | SourceImm), dst, Register.R0, 0, value);

        /// <summary>dst += src (64-bit).</summary>
        public static Instruction Reg(Register dst, Register src) => new((byte)(ClassAlu64 | OpAdd | SourceReg), dst, src, 0, 0);
    }

    public static class And
    {
        /// <summary>dst &amp;= imm (64-bit, the constant sign-extended).</summary>
        public static Instruction Imm(Register dst, int value) => new((byte)(ClassAlu64 | OpAnd | SourceImm), dst, Register.R0, 0, value);
    }

    /// <summary>dst = a 64-bit constant: a 64-bit immediate load (two instruction slots).</summary>
    public static Instruction[] LoadImm64(Register dst, ulong value) =>
    [
        new((byte)(ClassLd | ModeImm | (byte)Size.DWord), dst, Register.R0, 0, unchecked((int)(uint)value)),
        new(0, Register.R0, Register.R0, 0, unchecked((int)(uint)(value >> 32))),
    ];

    /// <summary>
    /// dst = the map whose file descriptor is <paramref name="mapFd"/>: a 64-bit immediate load
    /// (two instruction slots) that the verifier turns into the map's address at load time.
    /// </summary>
    public static Instruction[] LoadMapFd(Register dst, int mapFd) =>
    [
        new((byte)(ClassLd | ModeImm | (byte)Size.DWord), dst, (Register)PseudoMapFd, 0, mapFd),
        new(0, Register.R0, Register.R0, 0, 0),
    ];

    /// <summary>call helper: arguments in R1-R5, result in R0; R1-R5 are clobbered.</summary>
    public static Instruction Call(BpfHelper helper) => new((byte)(ClassJmp | OpCall), Register.R0, Register.R0, 0, (int)helper);

    /// <summary>lock *(size *)(dst + offset) += src: an atomic add (BPF_ATOMIC | BPF_ADD); Word or DWord only.</summary>
    public static Instruction AtomicAdd(Register dst, short offset, Register src, Size size) =>
        size is Size.Word or Size.DWord
            ? new((byte)(ClassStx | ModeAtomic | (byte)size), dst, src, offset, OpAdd)
            : throw new ArgumentException("an atomic add is 32 or 64 bits wide", nameof(size));

    /// <summary>*(size *)(dst + offset) = src.</summary>
    public static Instruction StoreMem(Register dst, short offset, Register src, Size size) =>
        new((byte)(ClassStx | ModeMem | (byte)size), dst, src, offset, 0);

    /// <summary>*(size *)(dst + offset) = imm. The verifier refuses this form on a context pointer.</summary>
    public static Instruction StoreImm(Register dst, short offset, int value, Size size) =>
        new((byte)(ClassSt | ModeMem | (byte)size), dst, Register.R0, offset, value);

    /// <summary>dst = *(size *)(src + offset).</summary>
    public static Instruction LoadMem(Register dst, Register src, short offset, Size size) =>
        new((byte)(ClassLdx | ModeMem | (byte)size), dst, src, offset, 0);

    /// <summary>if (dst op imm) goto label.</summary>
    public static Instruction JumpIf(JumpOp op, Register dst, int value, string label) =>
        new((byte)(ClassJmp | (byte)op | SourceImm), dst, Register.R0, 0, value) { Target = label };

    /// <summary>if (dst op src) goto label.</summary>
    public static Instruction JumpIfReg(JumpOp op, Register dst, Register src, string label) =>
        new((byte)(ClassJmp | (byte)op | SourceReg), dst, src, 0, 0) { Target = label };

    /// <summary>goto label.</summary>
    public static Instruction Jump(string label) => new((byte)(ClassJmp | OpJa), Register.R0, Register.R0, 0, 0) { Target = label };

    /// <summary>exit: return R0.</summary>
    public static Instruction Return() => new((byte)(ClassJmp | OpExit), Register.R0, Register.R0, 0, 0);

    /// <summary>Encodes instructions into the kernel's wire format, resolving labels.</summary>
    public static byte[] Encode(IReadOnlyList<Instruction> program)
    {
        var symbols = new Dictionary<string, int>(StringComparer.Ordinal);
        for (int i = 0; i < program.Count; i++)
        {
            if (program[i].Symbol is { } s && !symbols.TryAdd(s, i))
                throw new ArgumentException($"eBPF label '{s}' is defined twice", nameof(program));
        }
        var bytes = new byte[program.Count * 8];
        for (int i = 0; i < program.Count; i++)
        {
            short offset = program[i].Offset;
            if (program[i].Target is { } target)
            {
                if (!symbols.TryGetValue(target, out int at))
                    throw new ArgumentException($"eBPF jump at instruction {i} names unknown label '{target}'", nameof(program));
                // A jump offset counts from the instruction after the jump.
                offset = checked((short)(at - i - 1));
            }
            program[i].Write(bytes.AsSpan(i * 8, 8), offset);
        }
        return bytes;
    }
}
