using System;
using System.Buffers.Binary;
using System.Text;

namespace PipelineDsl.Serialization;

/// <summary>
/// Reads MessagePack from a span. Safe on untrusted input: every length is checked against the bytes
/// that remain before anything is allocated, nesting depth is limited, and no type named by the data
/// is ever instantiated.
/// </summary>
public ref struct MessagePackReader
{
    /// <summary>The deepest nesting of arrays and maps <see cref="Skip"/> and formatters accept.</summary>
    public const int MaxDepth = 64;

    private static readonly UTF8Encoding StrictUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);
    private readonly ReadOnlySpan<byte> _data;
    private int _position;
    private int _depth;

    /// <summary>Creates a reader over <paramref name="data"/>.</summary>
    public MessagePackReader(ReadOnlySpan<byte> data)
    {
        _data = data;
        _position = 0;
        _depth = 0;
    }

    /// <summary>The offset of the next byte to read.</summary>
    public readonly int Position => _position;

    /// <summary>True when every byte has been read.</summary>
    public readonly bool End => _position >= _data.Length;

    /// <summary>The number of bytes not read yet.</summary>
    public readonly int Remaining => _data.Length - _position;

    /// <summary>The kind of the next value, without consuming it.</summary>
    public readonly MessagePackType NextType
    {
        get
        {
            if (End) throw Truncated("a value");
            byte code = _data[_position];
            return code switch
            {
                <= 0x7f => MessagePackType.Integer,
                <= 0x8f => MessagePackType.Map,
                <= 0x9f => MessagePackType.Array,
                <= 0xbf => MessagePackType.String,
                0xc0 => MessagePackType.Nil,
                0xc1 => throw Malformed("0xc1 is never used"),
                0xc2 or 0xc3 => MessagePackType.Boolean,
                0xc4 or 0xc5 or 0xc6 => MessagePackType.Binary,
                0xc7 or 0xc8 or 0xc9 => MessagePackType.Extension,
                0xca or 0xcb => MessagePackType.Float,
                >= 0xcc and <= 0xd3 => MessagePackType.Integer,
                >= 0xd4 and <= 0xd8 => MessagePackType.Extension,
                >= 0xd9 and <= 0xdb => MessagePackType.String,
                0xdc or 0xdd => MessagePackType.Array,
                0xde or 0xdf => MessagePackType.Map,
                _ => MessagePackType.Integer, // negative fixint 0xe0..0xff
            };
        }
    }

    /// <summary>Consumes a nil and returns true, or returns false and consumes nothing.</summary>
    public bool TryReadNil()
    {
        if (!End && _data[_position] == 0xc0)
        {
            _position++;
            return true;
        }

        return false;
    }

    /// <summary>Reads a nil.</summary>
    public void ReadNil()
    {
        if (!TryReadNil()) throw WrongType("nil");
    }

    /// <summary>Reads a boolean.</summary>
    public bool ReadBoolean()
    {
        byte code = ReadByte("a boolean");
        return code switch
        {
            0xc2 => false,
            0xc3 => true,
            _ => throw WrongTypeAt(_position - 1, "a boolean"),
        };
    }

    /// <summary>Reads an integer of any encoding that fits in a <see cref="long"/>.</summary>
    public long ReadInt64()
    {
        int start = _position;
        byte code = ReadByte("an integer");
        switch (code)
        {
            case <= 0x7f: return code;
            case >= 0xe0: return unchecked((sbyte)code);
            case 0xcc: return Take(1, "uint 8")[0];
            case 0xcd: return BinaryPrimitives.ReadUInt16BigEndian(Take(2, "uint 16"));
            case 0xce: return BinaryPrimitives.ReadUInt32BigEndian(Take(4, "uint 32"));
            case 0xcf:
                ulong u = BinaryPrimitives.ReadUInt64BigEndian(Take(8, "uint 64"));
                if (u > long.MaxValue) throw new MessagePackException($"The integer at byte {start} is {u}, too large for a 64-bit signed integer.");
                return (long)u;
            case 0xd0: return unchecked((sbyte)Take(1, "int 8")[0]);
            case 0xd1: return BinaryPrimitives.ReadInt16BigEndian(Take(2, "int 16"));
            case 0xd2: return BinaryPrimitives.ReadInt32BigEndian(Take(4, "int 32"));
            case 0xd3: return BinaryPrimitives.ReadInt64BigEndian(Take(8, "int 64"));
            default: throw WrongTypeAt(start, "an integer");
        }
    }

    /// <summary>Reads a non-negative integer of any encoding that fits in a <see cref="ulong"/>.</summary>
    public ulong ReadUInt64()
    {
        int start = _position;
        if (!End && _data[_position] == 0xcf)
        {
            _position++;
            return BinaryPrimitives.ReadUInt64BigEndian(Take(8, "uint 64"));
        }

        long value = ReadInt64();
        if (value < 0) throw new MessagePackException($"The integer at byte {start} is {value}; an unsigned integer was expected.");
        return (ulong)value;
    }

    /// <summary>Reads an integer that must fit in an <see cref="int"/>.</summary>
    public int ReadInt32()
    {
        int start = _position;
        long value = ReadInt64();
        if (value < int.MinValue || value > int.MaxValue) throw new MessagePackException($"The integer at byte {start} is {value}, outside the range of a 32-bit integer.");
        return (int)value;
    }

    /// <summary>Reads a float 32, a float 64, or an integer, as a double.</summary>
    public double ReadDouble()
    {
        if (End) throw Truncated("a number");
        byte code = _data[_position];
        if (code == 0xca)
        {
            _position++;
            return BinaryPrimitives.ReadSingleBigEndian(Take(4, "float 32"));
        }

        if (code == 0xcb)
        {
            _position++;
            return BinaryPrimitives.ReadDoubleBigEndian(Take(8, "float 64"));
        }

        if (code == 0xcf) return ReadUInt64();
        return ReadInt64();
    }

    /// <summary>Reads a float 32, a float 64, or an integer, as a float.</summary>
    public float ReadSingle() => (float)ReadDouble();

    /// <summary>Reads a string, or null for nil.</summary>
    public string? ReadString()
    {
        if (TryReadNil()) return null;
        int start = _position;
        byte code = ReadByte("a string");
        int length = code switch
        {
            >= 0xa0 and <= 0xbf => code & 0x1f,
            0xd9 => Take(1, "str 8 length")[0],
            0xda => BinaryPrimitives.ReadUInt16BigEndian(Take(2, "str 16 length")),
            0xdb => CheckedLength(BinaryPrimitives.ReadUInt32BigEndian(Take(4, "str 32 length"))),
            _ => throw WrongTypeAt(start, "a string"),
        };
        var bytes = Take(length, "string bytes");
        try
        {
            return StrictUtf8.GetString(bytes);
        }
        catch (DecoderFallbackException e)
        {
            throw new MessagePackException($"The string at byte {start} is not valid UTF-8.", e);
        }
    }

    /// <summary>Reads binary data (or, leniently, a string's raw bytes), or null for nil.</summary>
    public byte[]? ReadBinary()
    {
        if (TryReadNil()) return null;
        return ReadBinarySpan().ToArray();
    }

    /// <summary>Reads binary data as a span over the input, without copying.</summary>
    public ReadOnlySpan<byte> ReadBinarySpan()
    {
        int start = _position;
        byte code = ReadByte("binary data");
        int length = code switch
        {
            0xc4 => Take(1, "bin 8 length")[0],
            0xc5 => BinaryPrimitives.ReadUInt16BigEndian(Take(2, "bin 16 length")),
            0xc6 => CheckedLength(BinaryPrimitives.ReadUInt32BigEndian(Take(4, "bin 32 length"))),
            >= 0xa0 and <= 0xbf => code & 0x1f,
            0xd9 => Take(1, "str 8 length")[0],
            0xda => BinaryPrimitives.ReadUInt16BigEndian(Take(2, "str 16 length")),
            0xdb => CheckedLength(BinaryPrimitives.ReadUInt32BigEndian(Take(4, "str 32 length"))),
            _ => throw WrongTypeAt(start, "binary data"),
        };
        return Take(length, "binary bytes");
    }

    /// <summary>
    /// Reads an array header. The count is checked against the remaining input (every element takes
    /// at least one byte), so a caller may size a collection by it.
    /// </summary>
    public int ReadArrayHeader()
    {
        int start = _position;
        byte code = ReadByte("an array");
        long count = code switch
        {
            >= 0x90 and <= 0x9f => code & 0x0f,
            0xdc => BinaryPrimitives.ReadUInt16BigEndian(Take(2, "array 16 count")),
            0xdd => BinaryPrimitives.ReadUInt32BigEndian(Take(4, "array 32 count")),
            _ => throw WrongTypeAt(start, "an array"),
        };
        if (count > Remaining) throw new MessagePackException($"The array at byte {start} claims {count} elements but only {Remaining} bytes remain.");
        return (int)count;
    }

    /// <summary>
    /// Reads a map header. The count is checked against the remaining input (every entry takes at
    /// least two bytes), so a caller may size a collection by it.
    /// </summary>
    public int ReadMapHeader()
    {
        int start = _position;
        byte code = ReadByte("a map");
        long count = code switch
        {
            >= 0x80 and <= 0x8f => code & 0x0f,
            0xde => BinaryPrimitives.ReadUInt16BigEndian(Take(2, "map 16 count")),
            0xdf => BinaryPrimitives.ReadUInt32BigEndian(Take(4, "map 32 count")),
            _ => throw WrongTypeAt(start, "a map"),
        };
        if (count * 2 > Remaining) throw new MessagePackException($"The map at byte {start} claims {count} entries but only {Remaining} bytes remain.");
        return (int)count;
    }

    /// <summary>Reads an extension value: its type code and a span over its data.</summary>
    public ReadOnlySpan<byte> ReadExtension(out sbyte typeCode)
    {
        int start = _position;
        byte code = ReadByte("an extension");
        int length = code switch
        {
            0xd4 => 1,
            0xd5 => 2,
            0xd6 => 4,
            0xd7 => 8,
            0xd8 => 16,
            0xc7 => Take(1, "ext 8 length")[0],
            0xc8 => BinaryPrimitives.ReadUInt16BigEndian(Take(2, "ext 16 length")),
            0xc9 => CheckedLength(BinaryPrimitives.ReadUInt32BigEndian(Take(4, "ext 32 length"))),
            _ => throw WrongTypeAt(start, "an extension"),
        };
        typeCode = unchecked((sbyte)Take(1, "extension type")[0]);
        return Take(length, "extension data");
    }

    /// <summary>Reads a timestamp (extension type -1) in any of its three encodings.</summary>
    public (long Seconds, uint Nanoseconds) ReadTimestamp()
    {
        int start = _position;
        var data = ReadExtension(out sbyte type);
        if (type != -1) throw new MessagePackException($"The extension at byte {start} has type {type}; a timestamp (type -1) was expected.");
        switch (data.Length)
        {
            case 4:
                return (BinaryPrimitives.ReadUInt32BigEndian(data), 0);
            case 8:
                ulong v = BinaryPrimitives.ReadUInt64BigEndian(data);
                uint ns64 = (uint)(v >> 34);
                if (ns64 > 999_999_999) throw new MessagePackException($"The timestamp at byte {start} has {ns64} nanoseconds.");
                return ((long)(v & 0x3_ffff_ffffUL), ns64);
            case 12:
                uint ns96 = BinaryPrimitives.ReadUInt32BigEndian(data);
                if (ns96 > 999_999_999) throw new MessagePackException($"The timestamp at byte {start} has {ns96} nanoseconds.");
                return (BinaryPrimitives.ReadInt64BigEndian(data[4..]), ns96);
            default:
                throw new MessagePackException($"The timestamp at byte {start} has {data.Length} bytes of data; 4, 8 or 12 were expected.");
        }
    }

    /// <summary>Reads a timestamp as a UTC <see cref="DateTime"/> (precision: 100 ns).</summary>
    public DateTime ReadDateTime()
    {
        int start = _position;
        var (seconds, nanoseconds) = ReadTimestamp();
        const long maxSeconds = 253402300799; // 9999-12-31T23:59:59Z
        const long minSeconds = -62135596800; // 0001-01-01T00:00:00Z
        if (seconds < minSeconds || seconds > maxSeconds) throw new MessagePackException($"The timestamp at byte {start} ({seconds} s) is outside the range of DateTime.");
        return new DateTime(DateTime.UnixEpoch.Ticks + seconds * TimeSpan.TicksPerSecond + nanoseconds / 100, DateTimeKind.Utc);
    }

    /// <summary>Skips the next value, however deeply nested, without recursion.</summary>
    public void Skip()
    {
        long pending = 1;
        while (pending > 0)
        {
            pending--;
            switch (NextType)
            {
                case MessagePackType.Nil:
                case MessagePackType.Boolean:
                    _position++;
                    break;
                case MessagePackType.Integer:
                    if (_data[_position] == 0xcf) ReadUInt64(); else ReadInt64();
                    break;
                case MessagePackType.Float:
                    ReadDouble();
                    break;
                case MessagePackType.String:
                case MessagePackType.Binary:
                    ReadBinarySpan();
                    break;
                case MessagePackType.Extension:
                    ReadExtension(out _);
                    break;
                case MessagePackType.Array:
                    pending += ReadArrayHeader();
                    break;
                case MessagePackType.Map:
                    pending += 2L * ReadMapHeader();
                    break;
            }
        }
    }

    /// <summary>Reads the next value's bytes as a span, without decoding it.</summary>
    public ReadOnlySpan<byte> ReadRaw()
    {
        int start = _position;
        Skip();
        return _data[start.._position];
    }

    /// <summary>
    /// Marks entry into a nested value (called by formatters of recursive types); throws past
    /// <see cref="MaxDepth"/> so that hostile input cannot exhaust the stack.
    /// </summary>
    public void EnterNested()
    {
        if (++_depth > MaxDepth) throw new MessagePackException($"The value at byte {_position} is nested more than {MaxDepth} levels deep.");
    }

    /// <summary>Marks the end of a nested value entered with <see cref="EnterNested"/>.</summary>
    public void LeaveNested() => _depth--;

    private byte ReadByte(string expected)
    {
        if (End) throw Truncated(expected);
        return _data[_position++];
    }

    private ReadOnlySpan<byte> Take(int count, string what)
    {
        if (count > Remaining) throw Truncated(what);
        var span = _data.Slice(_position, count);
        _position += count;
        return span;
    }

    private readonly int CheckedLength(uint length)
    {
        if (length > int.MaxValue || length > (uint)Remaining) throw new MessagePackException($"A length of {length} at byte {_position} exceeds the {Remaining} bytes that remain.");
        return (int)length;
    }

    private readonly MessagePackException Truncated(string expected) =>
        new($"The input ends at byte {_position} where {expected} was expected (truncated data).");

    private readonly MessagePackException Malformed(string reason) =>
        new($"Malformed MessagePack at byte {_position}: {reason}.");

    private readonly MessagePackException WrongType(string expected) => WrongTypeAt(_position, expected);

    private readonly MessagePackException WrongTypeAt(int position, string expected) =>
        new($"Expected {expected} at byte {position} but found code 0x{_data[position]:x2}.");
}
