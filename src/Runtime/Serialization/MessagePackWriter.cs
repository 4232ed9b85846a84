using System;
using System.Buffers;
using System.Buffers.Binary;
using System.Text;

namespace PipelineDsl.Serialization;

/// <summary>
/// Writes MessagePack (https://github.com/msgpack/msgpack/blob/master/spec.md) into a growable
/// buffer, always choosing the shortest encoding of each value.
/// </summary>
/// <remarks>Not thread-safe. <see cref="Clear"/> reuses the buffer for the next message.</remarks>
public sealed class MessagePackWriter
{
    private static readonly UTF8Encoding StrictUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);
    private byte[] _buffer;
    private int _length;

    /// <summary>Creates a writer with the given initial capacity in bytes.</summary>
    public MessagePackWriter(int initialCapacity = 256)
    {
        if (initialCapacity < 1) throw new ArgumentOutOfRangeException(nameof(initialCapacity), "initialCapacity must be 1 or more.");
        _buffer = new byte[initialCapacity];
    }

    /// <summary>The number of bytes written so far.</summary>
    public int Length => _length;

    /// <summary>The bytes written so far; valid until the next write or <see cref="Clear"/>.</summary>
    public ReadOnlySpan<byte> WrittenSpan => _buffer.AsSpan(0, _length);

    /// <summary>The bytes written so far; valid until the next write or <see cref="Clear"/>.</summary>
    public ReadOnlyMemory<byte> WrittenMemory => _buffer.AsMemory(0, _length);

    /// <summary>Copies the bytes written so far into a new array.</summary>
    public byte[] ToArray() => WrittenSpan.ToArray();

    /// <summary>Forgets what was written, keeping the buffer.</summary>
    public void Clear() => _length = 0;

    /// <summary>Writes nil.</summary>
    public void WriteNil() => Span(1)[0] = 0xc0;

    /// <summary>Writes a boolean.</summary>
    public void Write(bool value) => Span(1)[0] = value ? (byte)0xc3 : (byte)0xc2;

    /// <summary>Writes a signed integer in its shortest encoding.</summary>
    public void Write(long value)
    {
        if (value >= 0)
        {
            Write((ulong)value);
            return;
        }

        if (value >= -32)
        {
            Span(1)[0] = unchecked((byte)value);
        }
        else if (value >= sbyte.MinValue)
        {
            var s = Span(2);
            s[0] = 0xd0;
            s[1] = unchecked((byte)value);
        }
        else if (value >= short.MinValue)
        {
            var s = Span(3);
            s[0] = 0xd1;
            BinaryPrimitives.WriteInt16BigEndian(s[1..], (short)value);
        }
        else if (value >= int.MinValue)
        {
            var s = Span(5);
            s[0] = 0xd2;
            BinaryPrimitives.WriteInt32BigEndian(s[1..], (int)value);
        }
        else
        {
            var s = Span(9);
            s[0] = 0xd3;
            BinaryPrimitives.WriteInt64BigEndian(s[1..], value);
        }
    }

    /// <summary>Writes an unsigned integer in its shortest encoding.</summary>
    public void Write(ulong value)
    {
        if (value <= 0x7f)
        {
            Span(1)[0] = (byte)value;
        }
        else if (value <= byte.MaxValue)
        {
            var s = Span(2);
            s[0] = 0xcc;
            s[1] = (byte)value;
        }
        else if (value <= ushort.MaxValue)
        {
            var s = Span(3);
            s[0] = 0xcd;
            BinaryPrimitives.WriteUInt16BigEndian(s[1..], (ushort)value);
        }
        else if (value <= uint.MaxValue)
        {
            var s = Span(5);
            s[0] = 0xce;
            BinaryPrimitives.WriteUInt32BigEndian(s[1..], (uint)value);
        }
        else
        {
            var s = Span(9);
            s[0] = 0xcf;
            BinaryPrimitives.WriteUInt64BigEndian(s[1..], value);
        }
    }

    /// <summary>Writes a float 32.</summary>
    public void Write(float value)
    {
        var s = Span(5);
        s[0] = 0xca;
        BinaryPrimitives.WriteSingleBigEndian(s[1..], value);
    }

    /// <summary>
    /// Writes a double: as float 32 when that represents it exactly (the shortest encoding),
    /// otherwise as float 64. Reading it back as a double always yields the same value.
    /// </summary>
    public void Write(double value)
    {
        float narrow = (float)value;
        if (narrow == value || double.IsNaN(value))
        {
            Write(narrow);
            return;
        }

        var s = Span(9);
        s[0] = 0xcb;
        BinaryPrimitives.WriteDoubleBigEndian(s[1..], value);
    }

    /// <summary>Writes a string as UTF-8, or nil when it is null.</summary>
    public void Write(string? value)
    {
        if (value is null)
        {
            WriteNil();
            return;
        }

        // Most strings are ASCII, whose UTF-8 byte count is their length: write the header, then narrow the
        // chars in one vectorized pass. At the first other char, roll back and encode in full below.
        int headerAt = _length;
        WriteStringHeader(value.Length);
        if (Ascii.FromUtf16(value, Span(value.Length), out _) == OperationStatus.Done) return;
        _length = headerAt;

        if (value.Length <= 85)
        {
            // One pass for short strings (keys, names): at most 255 bytes of UTF-8, so the header is fixstr
            // or str8. Encode after a 2-byte gap, then close the gap if fixstr is enough (the shortest form).
            int start = _length;
            var span = Span(2 + value.Length * 3);
            int n = StrictUtf8.GetBytes(value, span[2..]);
            if (n <= 31)
            {
                span[0] = (byte)(0xa0 | n);
                span.Slice(2, n).CopyTo(span[1..]);
                _length = start + 1 + n;
            }
            else
            {
                span[0] = 0xd9;
                span[1] = (byte)n;
                _length = start + 2 + n;
            }

            return;
        }

        int byteCount = StrictUtf8.GetByteCount(value);
        WriteStringHeader(byteCount);
        StrictUtf8.GetBytes(value, Span(byteCount));
    }

    /// <summary>Writes a string header for <paramref name="byteCount"/> bytes of UTF-8 that the caller writes next.</summary>
    public void WriteStringHeader(int byteCount)
    {
        if (byteCount < 0) throw new ArgumentOutOfRangeException(nameof(byteCount));
        if (byteCount <= 31)
        {
            Span(1)[0] = (byte)(0xa0 | byteCount);
        }
        else if (byteCount <= byte.MaxValue)
        {
            var s = Span(2);
            s[0] = 0xd9;
            s[1] = (byte)byteCount;
        }
        else if (byteCount <= ushort.MaxValue)
        {
            var s = Span(3);
            s[0] = 0xda;
            BinaryPrimitives.WriteUInt16BigEndian(s[1..], (ushort)byteCount);
        }
        else
        {
            var s = Span(5);
            s[0] = 0xdb;
            BinaryPrimitives.WriteUInt32BigEndian(s[1..], (uint)byteCount);
        }
    }

    /// <summary>Writes raw bytes as bin 8/16/32, or nil when <paramref name="value"/> is null.</summary>
    public void Write(byte[]? value)
    {
        if (value is null)
        {
            WriteNil();
            return;
        }

        WriteBinary(value);
    }

    /// <summary>Writes raw bytes as bin 8/16/32.</summary>
    public void WriteBinary(ReadOnlySpan<byte> value)
    {
        int n = value.Length;
        if (n <= byte.MaxValue)
        {
            var s = Span(2);
            s[0] = 0xc4;
            s[1] = (byte)n;
        }
        else if (n <= ushort.MaxValue)
        {
            var s = Span(3);
            s[0] = 0xc5;
            BinaryPrimitives.WriteUInt16BigEndian(s[1..], (ushort)n);
        }
        else
        {
            var s = Span(5);
            s[0] = 0xc6;
            BinaryPrimitives.WriteUInt32BigEndian(s[1..], (uint)n);
        }

        value.CopyTo(Span(n));
    }

    /// <summary>Writes an array header; the caller then writes <paramref name="count"/> values.</summary>
    public void WriteArrayHeader(int count)
    {
        if (count < 0) throw new ArgumentOutOfRangeException(nameof(count));
        WriteContainerHeader(count, 0x90, 0xdc, 0xdd);
    }

    /// <summary>Writes a map header; the caller then writes <paramref name="count"/> key/value pairs.</summary>
    public void WriteMapHeader(int count)
    {
        if (count < 0) throw new ArgumentOutOfRangeException(nameof(count));
        WriteContainerHeader(count, 0x80, 0xde, 0xdf);
    }

    /// <summary>Writes an extension value of the given type code.</summary>
    public void WriteExtension(sbyte typeCode, ReadOnlySpan<byte> data)
    {
        int n = data.Length;
        byte type = unchecked((byte)typeCode);
        byte fixCode = n switch { 1 => 0xd4, 2 => 0xd5, 4 => 0xd6, 8 => 0xd7, 16 => 0xd8, _ => 0 };
        if (fixCode != 0)
        {
            var s = Span(2);
            s[0] = fixCode;
            s[1] = type;
        }
        else if (n <= byte.MaxValue)
        {
            var s = Span(3);
            s[0] = 0xc7;
            s[1] = (byte)n;
            s[2] = type;
        }
        else if (n <= ushort.MaxValue)
        {
            var s = Span(4);
            s[0] = 0xc8;
            BinaryPrimitives.WriteUInt16BigEndian(s[1..], (ushort)n);
            s[3] = type;
        }
        else
        {
            var s = Span(6);
            s[0] = 0xc9;
            BinaryPrimitives.WriteUInt32BigEndian(s[1..], (uint)n);
            s[5] = type;
        }

        data.CopyTo(Span(n));
    }

    /// <summary>
    /// Writes a timestamp (extension type -1) in the shortest of the three encodings the spec defines.
    /// </summary>
    /// <param name="seconds">Seconds since 1970-01-01T00:00:00Z.</param>
    /// <param name="nanoseconds">Nanoseconds within the second, 0 to 999,999,999.</param>
    public void WriteTimestamp(long seconds, uint nanoseconds)
    {
        if (nanoseconds > 999_999_999) throw new ArgumentOutOfRangeException(nameof(nanoseconds), "nanoseconds must be below 1,000,000,000.");
        if ((seconds >> 34) == 0)
        {
            ulong data64 = ((ulong)nanoseconds << 34) | (ulong)seconds;
            if ((data64 & 0xffffffff00000000UL) == 0)
            {
                Span<byte> d32 = stackalloc byte[4];
                BinaryPrimitives.WriteUInt32BigEndian(d32, (uint)data64);
                WriteExtension(-1, d32);
            }
            else
            {
                Span<byte> d64 = stackalloc byte[8];
                BinaryPrimitives.WriteUInt64BigEndian(d64, data64);
                WriteExtension(-1, d64);
            }
        }
        else
        {
            Span<byte> d96 = stackalloc byte[12];
            BinaryPrimitives.WriteUInt32BigEndian(d96, nanoseconds);
            BinaryPrimitives.WriteInt64BigEndian(d96[4..], seconds);
            WriteExtension(-1, d96);
        }
    }

    /// <summary>Writes a <see cref="DateTime"/> as a timestamp (converted to UTC; unspecified kind is taken as UTC).</summary>
    public void Write(DateTime value)
    {
        DateTime utc = value.Kind == DateTimeKind.Local ? value.ToUniversalTime() : value;
        long ticks = utc.Ticks - DateTime.UnixEpoch.Ticks;
        long seconds = Math.DivRem(ticks, TimeSpan.TicksPerSecond, out long remainder);
        if (remainder < 0)
        {
            seconds--;
            remainder += TimeSpan.TicksPerSecond;
        }

        WriteTimestamp(seconds, (uint)(remainder * 100));
    }

    /// <summary>Appends bytes that already are MessagePack (one or more whole values).</summary>
    public void WriteRaw(ReadOnlySpan<byte> messagePack) => messagePack.CopyTo(Span(messagePack.Length));

    private void WriteContainerHeader(int count, byte fix, byte code16, byte code32)
    {
        if (count <= 15)
        {
            Span(1)[0] = (byte)(fix | count);
        }
        else if (count <= ushort.MaxValue)
        {
            var s = Span(3);
            s[0] = code16;
            BinaryPrimitives.WriteUInt16BigEndian(s[1..], (ushort)count);
        }
        else
        {
            var s = Span(5);
            s[0] = code32;
            BinaryPrimitives.WriteUInt32BigEndian(s[1..], (uint)count);
        }
    }

    private Span<byte> Span(int size)
    {
        int needed = _length + size;
        if (needed > _buffer.Length)
        {
            int grown = Math.Max(needed, _buffer.Length <= int.MaxValue / 2 ? _buffer.Length * 2 : int.MaxValue);
            Array.Resize(ref _buffer, grown);
        }

        var span = _buffer.AsSpan(_length, size);
        _length = needed;
        return span;
    }
}
