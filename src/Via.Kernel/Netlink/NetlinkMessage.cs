using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using System.Text;

namespace Via.Kernel.Netlink;

/// <summary>Builds one netlink message: header, family struct, then 4-byte aligned attributes.</summary>
internal sealed class NetlinkMessageBuilder
{
    private byte[] _buffer = new byte[256];
    private int _length;

    public NetlinkMessageBuilder(ushort type, ushort flags)
    {
        var header = new NlMsgHdr { Type = type, Flags = flags };
        Append(MemoryMarshal.AsBytes(new ReadOnlySpan<NlMsgHdr>(ref header)));
    }

    public NetlinkMessageBuilder Struct<T>(T value) where T : unmanaged
    {
        Append(MemoryMarshal.AsBytes(new ReadOnlySpan<T>(ref value)));
        return this;
    }

    public NetlinkMessageBuilder Attr(ushort type, ReadOnlySpan<byte> payload)
    {
        Append(AttrHeader(type, payload.Length));
        Append(payload);
        return this;
    }

    /// <summary>struct nlattr { u16 nla_len; u16 nla_type; } of an attribute with <paramref name="payloadLength"/> bytes.</summary>
    internal static byte[] AttrHeader(ushort type, int payloadLength)
    {
        var header = new byte[4];
        BinaryPrimitives.WriteUInt16LittleEndian(header, (ushort)(4 + payloadLength));
        BinaryPrimitives.WriteUInt16LittleEndian(header.AsSpan(2), type);
        return header;
    }

    public NetlinkMessageBuilder U32(ushort type, uint value)
    {
        Span<byte> b = stackalloc byte[4];
        BinaryPrimitives.WriteUInt32LittleEndian(b, value);
        return Attr(type, b);
    }

    public NetlinkMessageBuilder U8(ushort type, byte value) => Attr(type, [value]);

    public NetlinkMessageBuilder Address(ushort type, IPAddress address) => Attr(type, address.GetAddressBytes());

    public NetlinkMessageBuilder String(ushort type, string value) => Attr(type, Encoding.UTF8.GetBytes(value + "\0"));

    private void Append(ReadOnlySpan<byte> bytes)
    {
        int aligned = Align(bytes.Length);
        if (_length + aligned > _buffer.Length) Array.Resize(ref _buffer, Math.Max(_buffer.Length * 2, _length + aligned));
        bytes.CopyTo(_buffer.AsSpan(_length));
        _buffer.AsSpan(_length + bytes.Length, aligned - bytes.Length).Clear();
        _length += aligned;
    }

    /// <summary>The finished message with its length and sequence number filled in.</summary>
    public byte[] Build(uint sequence)
    {
        var bytes = _buffer[.._length];
        BinaryPrimitives.WriteUInt32LittleEndian(bytes, (uint)_length);
        BinaryPrimitives.WriteUInt32LittleEndian(bytes.AsSpan(8), sequence);
        return bytes;
    }

    internal static int Align(int length) => (length + 3) & ~3;
}

/// <summary>Nested attributes: a payload of 4-byte aligned attributes (and a leading struct, for VETH_INFO_PEER).</summary>
internal sealed class NetlinkAttributes
{
    private readonly List<byte> _bytes = [];

    public byte[] Bytes => [.. _bytes];

    public void Struct<T>(T value) where T : unmanaged => Append(MemoryMarshal.AsBytes(new ReadOnlySpan<T>(ref value)));

    public void Attr(ushort type, ReadOnlySpan<byte> payload)
    {
        Append(NetlinkMessageBuilder.AttrHeader(type, payload.Length));
        Append(payload);
    }

    public void String(ushort type, string value) => Attr(type, Encoding.UTF8.GetBytes(value + "\0"));

    public void U32(ushort type, uint value)
    {
        Span<byte> b = stackalloc byte[4];
        BinaryPrimitives.WriteUInt32LittleEndian(b, value);
        Attr(type, b);
    }

    /// <summary>A 32-bit value in network byte order (nf_tables' attributes are big-endian).</summary>
    public void Be32(ushort type, uint value)
    {
        Span<byte> b = stackalloc byte[4];
        BinaryPrimitives.WriteUInt32BigEndian(b, value);
        Attr(type, b);
    }

    private void Append(ReadOnlySpan<byte> bytes)
    {
        _bytes.AddRange(bytes.ToArray());
        for (int pad = NetlinkMessageBuilder.Align(bytes.Length) - bytes.Length; pad > 0; pad--) _bytes.Add(0);
    }
}

/// <summary>A received netlink message: header, family struct and attributes.</summary>
internal readonly ref struct NetlinkMessage(NlMsgHdr header, ReadOnlySpan<byte> payload)
{
    public NlMsgHdr Header { get; } = header;
    public ReadOnlySpan<byte> Payload { get; } = payload;

    public T Struct<T>() where T : unmanaged => MemoryMarshal.Read<T>(Payload);

    /// <summary>Attributes that follow a family struct of <paramref name="headerSize"/> bytes.</summary>
    public Dictionary<ushort, byte[]> Attributes(int headerSize) =>
        ParseAttributes(Payload[Math.Min(NetlinkMessageBuilder.Align(headerSize), Payload.Length)..]);

    /// <summary>A run of 4-byte aligned attributes (struct rtattr and payload), by type.</summary>
    public static Dictionary<ushort, byte[]> ParseAttributes(ReadOnlySpan<byte> span)
    {
        var result = new Dictionary<ushort, byte[]>();
        while (span.Length >= 4)
        {
            ushort len = BinaryPrimitives.ReadUInt16LittleEndian(span);
            ushort type = (ushort)(BinaryPrimitives.ReadUInt16LittleEndian(span[2..]) & 0x3fff);
            if (len < 4 || len > span.Length) break;
            result[type] = span[4..len].ToArray();
            span = span[Math.Min(NetlinkMessageBuilder.Align(len), span.Length)..];
        }
        return result;
    }

    public static uint U32(byte[] b) => BinaryPrimitives.ReadUInt32LittleEndian(b);

    public static IPAddress Ip(byte[] b) => new(b);

    public static string Str(byte[] b) => Encoding.UTF8.GetString(b).TrimEnd('\0');

    public static AddressFamily Family(byte f) => f switch
    {
        2 => AddressFamily.InterNetwork,
        10 => AddressFamily.InterNetworkV6,
        _ => AddressFamily.Unspecified,
    };

    public static byte Family(AddressFamily f) => f switch
    {
        AddressFamily.InterNetwork => 2,
        AddressFamily.InterNetworkV6 => 10,
        _ => 0,
    };
}
