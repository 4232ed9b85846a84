using System;
using System.Collections.Generic;

using System.ComponentModel;
using PipelineDsl.Serialization;

namespace PipelineDsl.CompilerServices;

/// <summary>Formatters for the primitive types that state contracts may hold.</summary>
[EditorBrowsable(EditorBrowsableState.Never)]
public static class MessagePackFormatters
{
    /// <summary><see cref="bool"/> as a MessagePack boolean.</summary>
    public static IMessagePackFormatter<bool> Boolean { get; } = new BooleanFormatter();
    /// <summary><see cref="byte"/> as an integer.</summary>
    public static IMessagePackFormatter<byte> Byte { get; } = new ByteFormatter();
    /// <summary><see cref="sbyte"/> as an integer.</summary>
    public static IMessagePackFormatter<sbyte> SByte { get; } = new SByteFormatter();
    /// <summary><see cref="short"/> as an integer.</summary>
    public static IMessagePackFormatter<short> Int16 { get; } = new Int16Formatter();
    /// <summary><see cref="ushort"/> as an integer.</summary>
    public static IMessagePackFormatter<ushort> UInt16 { get; } = new UInt16Formatter();
    /// <summary><see cref="int"/> as an integer.</summary>
    public static IMessagePackFormatter<int> Int32 { get; } = new Int32Formatter();
    /// <summary><see cref="uint"/> as an integer.</summary>
    public static IMessagePackFormatter<uint> UInt32 { get; } = new UInt32Formatter();
    /// <summary><see cref="long"/> as an integer.</summary>
    public static IMessagePackFormatter<long> Int64 { get; } = new Int64Formatter();
    /// <summary><see cref="ulong"/> as an integer.</summary>
    public static IMessagePackFormatter<ulong> UInt64 { get; } = new UInt64Formatter();
    /// <summary><see cref="float"/> as float 32.</summary>
    public static IMessagePackFormatter<float> Single { get; } = new SingleFormatter();
    /// <summary><see cref="double"/> as float 64 (or float 32 when exact).</summary>
    public static IMessagePackFormatter<double> Double { get; } = new DoubleFormatter();
    /// <summary><see cref="decimal"/> as its invariant string, which any tool can read exactly.</summary>
    public static IMessagePackFormatter<decimal> Decimal { get; } = new DecimalFormatter();
    /// <summary><see cref="char"/> as an integer (its UTF-16 code unit).</summary>
    public static IMessagePackFormatter<char> Char { get; } = new CharFormatter();
    /// <summary><see cref="string"/> as UTF-8; null as nil.</summary>
    public static IMessagePackFormatter<string?> String { get; } = new StringFormatter();
    /// <summary><see cref="byte"/> arrays as bin; null as nil.</summary>
    public static IMessagePackFormatter<byte[]?> Binary { get; } = new BinaryFormatter();
    /// <summary><see cref="System.DateTime"/> as a timestamp (UTC).</summary>
    public static IMessagePackFormatter<DateTime> DateTime { get; } = new DateTimeFormatter();
    /// <summary><see cref="System.DateTimeOffset"/> as [timestamp, offset minutes].</summary>
    public static IMessagePackFormatter<DateTimeOffset> DateTimeOffset { get; } = new DateTimeOffsetFormatter();
    /// <summary><see cref="System.TimeSpan"/> as its ticks.</summary>
    public static IMessagePackFormatter<TimeSpan> TimeSpan { get; } = new TimeSpanFormatter();
    /// <summary><see cref="System.Guid"/> as 16 bytes of bin (RFC 4122 byte order).</summary>
    public static IMessagePackFormatter<Guid> Guid { get; } = new GuidFormatter();

    private sealed class BooleanFormatter : IMessagePackFormatter<bool>
    {
        public void Serialize(MessagePackWriter writer, bool value) => writer.Write(value);
        public bool Deserialize(ref MessagePackReader reader) => reader.ReadBoolean();
    }

    private sealed class ByteFormatter : IMessagePackFormatter<byte>
    {
        public void Serialize(MessagePackWriter writer, byte value) => writer.Write((ulong)value);
        public byte Deserialize(ref MessagePackReader reader) => checked((byte)reader.ReadInt64());
    }

    private sealed class SByteFormatter : IMessagePackFormatter<sbyte>
    {
        public void Serialize(MessagePackWriter writer, sbyte value) => writer.Write((long)value);
        public sbyte Deserialize(ref MessagePackReader reader) => checked((sbyte)reader.ReadInt64());
    }

    private sealed class Int16Formatter : IMessagePackFormatter<short>
    {
        public void Serialize(MessagePackWriter writer, short value) => writer.Write((long)value);
        public short Deserialize(ref MessagePackReader reader) => checked((short)reader.ReadInt64());
    }

    private sealed class UInt16Formatter : IMessagePackFormatter<ushort>
    {
        public void Serialize(MessagePackWriter writer, ushort value) => writer.Write((ulong)value);
        public ushort Deserialize(ref MessagePackReader reader) => checked((ushort)reader.ReadInt64());
    }

    private sealed class Int32Formatter : IMessagePackFormatter<int>
    {
        public void Serialize(MessagePackWriter writer, int value) => writer.Write((long)value);
        public int Deserialize(ref MessagePackReader reader) => reader.ReadInt32();
    }

    private sealed class UInt32Formatter : IMessagePackFormatter<uint>
    {
        public void Serialize(MessagePackWriter writer, uint value) => writer.Write((ulong)value);
        public uint Deserialize(ref MessagePackReader reader) => checked((uint)reader.ReadInt64());
    }

    private sealed class Int64Formatter : IMessagePackFormatter<long>
    {
        public void Serialize(MessagePackWriter writer, long value) => writer.Write(value);
        public long Deserialize(ref MessagePackReader reader) => reader.ReadInt64();
    }

    private sealed class UInt64Formatter : IMessagePackFormatter<ulong>
    {
        public void Serialize(MessagePackWriter writer, ulong value) => writer.Write(value);
        public ulong Deserialize(ref MessagePackReader reader) => reader.ReadUInt64();
    }

    private sealed class SingleFormatter : IMessagePackFormatter<float>
    {
        public void Serialize(MessagePackWriter writer, float value) => writer.Write(value);
        public float Deserialize(ref MessagePackReader reader) => reader.ReadSingle();
    }

    private sealed class DoubleFormatter : IMessagePackFormatter<double>
    {
        public void Serialize(MessagePackWriter writer, double value) => writer.Write(value);
        public double Deserialize(ref MessagePackReader reader) => reader.ReadDouble();
    }

    private sealed class DecimalFormatter : IMessagePackFormatter<decimal>
    {
        public void Serialize(MessagePackWriter writer, decimal value) =>
            writer.Write(value.ToString(System.Globalization.CultureInfo.InvariantCulture));

        public decimal Deserialize(ref MessagePackReader reader)
        {
            int at = reader.Position;
            string? text = reader.ReadString();
            if (text is null || !decimal.TryParse(text, System.Globalization.NumberStyles.Number, System.Globalization.CultureInfo.InvariantCulture, out decimal value))
                throw new MessagePackException($"The decimal at byte {at} is not a number: '{text}'.");
            return value;
        }
    }

    private sealed class CharFormatter : IMessagePackFormatter<char>
    {
        public void Serialize(MessagePackWriter writer, char value) => writer.Write((ulong)value);
        public char Deserialize(ref MessagePackReader reader) => checked((char)reader.ReadInt64());
    }

    private sealed class StringFormatter : IMessagePackFormatter<string?>
    {
        public void Serialize(MessagePackWriter writer, string? value) => writer.Write(value);
        public string? Deserialize(ref MessagePackReader reader) => reader.ReadString();
    }

    private sealed class BinaryFormatter : IMessagePackFormatter<byte[]?>
    {
        public void Serialize(MessagePackWriter writer, byte[]? value) => writer.Write(value);
        public byte[]? Deserialize(ref MessagePackReader reader) => reader.ReadBinary();
    }

    private sealed class DateTimeFormatter : IMessagePackFormatter<DateTime>
    {
        public void Serialize(MessagePackWriter writer, DateTime value) => writer.Write(value);
        public DateTime Deserialize(ref MessagePackReader reader) => reader.ReadDateTime();
    }

    private sealed class DateTimeOffsetFormatter : IMessagePackFormatter<DateTimeOffset>
    {
        public void Serialize(MessagePackWriter writer, DateTimeOffset value)
        {
            writer.WriteArrayHeader(2);
            writer.Write(value.UtcDateTime);
            writer.Write((long)value.Offset.TotalMinutes);
        }

        public DateTimeOffset Deserialize(ref MessagePackReader reader)
        {
            int at = reader.Position;
            if (reader.ReadArrayHeader() != 2) throw new MessagePackException($"The DateTimeOffset at byte {at} is not a 2-element array.");
            DateTime utc = reader.ReadDateTime();
            long minutes = reader.ReadInt64();
            if (minutes < -14 * 60 || minutes > 14 * 60) throw new MessagePackException($"The DateTimeOffset at byte {at} has an offset of {minutes} minutes.");
            return new DateTimeOffset(utc).ToOffset(System.TimeSpan.FromMinutes(minutes));
        }
    }

    private sealed class TimeSpanFormatter : IMessagePackFormatter<TimeSpan>
    {
        public void Serialize(MessagePackWriter writer, TimeSpan value) => writer.Write(value.Ticks);
        public TimeSpan Deserialize(ref MessagePackReader reader) => new(reader.ReadInt64());
    }

    private sealed class GuidFormatter : IMessagePackFormatter<Guid>
    {
        public void Serialize(MessagePackWriter writer, Guid value)
        {
            Span<byte> bytes = stackalloc byte[16];
            value.TryWriteBytes(bytes, bigEndian: true, out _);
            writer.WriteBinary(bytes);
        }

        public Guid Deserialize(ref MessagePackReader reader)
        {
            int at = reader.Position;
            var bytes = reader.ReadBinarySpan();
            if (bytes.Length != 16) throw new MessagePackException($"The Guid at byte {at} has {bytes.Length} bytes; 16 were expected.");
            return new Guid(bytes, bigEndian: true);
        }
    }
}

/// <summary>A nullable value type: nil for null, otherwise the inner formatter's encoding.</summary>
[EditorBrowsable(EditorBrowsableState.Never)]
public sealed class NullableFormatter<T> : IMessagePackFormatter<T?> where T : struct
{
    private readonly IMessagePackFormatter<T> _inner;

    /// <summary>Wraps the formatter of the underlying type.</summary>
    public NullableFormatter(IMessagePackFormatter<T> inner) => _inner = inner ?? throw new ArgumentNullException(nameof(inner));

    /// <inheritdoc />
    public void Serialize(MessagePackWriter writer, T? value)
    {
        if (value.HasValue) _inner.Serialize(writer, value.GetValueOrDefault());
        else writer.WriteNil();
    }

    /// <inheritdoc />
    public T? Deserialize(ref MessagePackReader reader) => reader.TryReadNil() ? null : _inner.Deserialize(ref reader);
}

/// <summary>An array as a MessagePack array; null as nil.</summary>
[EditorBrowsable(EditorBrowsableState.Never)]
public sealed class ArrayFormatter<T> : IMessagePackFormatter<T[]?>
{
    private readonly IMessagePackFormatter<T> _element;

    /// <summary>Wraps the element formatter.</summary>
    public ArrayFormatter(IMessagePackFormatter<T> element) => _element = element ?? throw new ArgumentNullException(nameof(element));

    /// <inheritdoc />
    public void Serialize(MessagePackWriter writer, T[]? value)
    {
        if (value is null)
        {
            writer.WriteNil();
            return;
        }

        writer.WriteArrayHeader(value.Length);
        foreach (T item in value) _element.Serialize(writer, item);
    }

    /// <inheritdoc />
    public T[]? Deserialize(ref MessagePackReader reader)
    {
        if (reader.TryReadNil()) return null;
        int count = reader.ReadArrayHeader();
        reader.EnterNested();
        var result = new T[count];
        for (int i = 0; i < count; i++) result[i] = _element.Deserialize(ref reader);
        reader.LeaveNested();
        return result;
    }
}

/// <summary>A <see cref="List{T}"/> as a MessagePack array; null as nil.</summary>
[EditorBrowsable(EditorBrowsableState.Never)]
public sealed class ListFormatter<T> : IMessagePackFormatter<List<T>?>
{
    private readonly IMessagePackFormatter<T> _element;

    /// <summary>Wraps the element formatter.</summary>
    public ListFormatter(IMessagePackFormatter<T> element) => _element = element ?? throw new ArgumentNullException(nameof(element));

    /// <inheritdoc />
    public void Serialize(MessagePackWriter writer, List<T>? value)
    {
        if (value is null)
        {
            writer.WriteNil();
            return;
        }

        writer.WriteArrayHeader(value.Count);
        foreach (T item in value) _element.Serialize(writer, item);
    }

    /// <inheritdoc />
    public List<T>? Deserialize(ref MessagePackReader reader)
    {
        if (reader.TryReadNil()) return null;
        int count = reader.ReadArrayHeader();
        reader.EnterNested();
        var result = new List<T>(count);
        for (int i = 0; i < count; i++) result.Add(_element.Deserialize(ref reader));
        reader.LeaveNested();
        return result;
    }
}

/// <summary>A <see cref="Dictionary{TKey, TValue}"/> as a MessagePack map; null as nil.</summary>
[EditorBrowsable(EditorBrowsableState.Never)]
public sealed class DictionaryFormatter<TKey, TValue> : IMessagePackFormatter<Dictionary<TKey, TValue>?> where TKey : notnull
{
    private readonly IMessagePackFormatter<TKey> _key;
    private readonly IMessagePackFormatter<TValue> _value;

    /// <summary>Wraps the key and value formatters.</summary>
    public DictionaryFormatter(IMessagePackFormatter<TKey> key, IMessagePackFormatter<TValue> value)
    {
        _key = key ?? throw new ArgumentNullException(nameof(key));
        _value = value ?? throw new ArgumentNullException(nameof(value));
    }

    /// <inheritdoc />
    public void Serialize(MessagePackWriter writer, Dictionary<TKey, TValue>? value)
    {
        if (value is null)
        {
            writer.WriteNil();
            return;
        }

        writer.WriteMapHeader(value.Count);
        foreach (var pair in value)
        {
            _key.Serialize(writer, pair.Key);
            _value.Serialize(writer, pair.Value);
        }
    }

    /// <inheritdoc />
    public Dictionary<TKey, TValue>? Deserialize(ref MessagePackReader reader)
    {
        if (reader.TryReadNil()) return null;
        int at = reader.Position;
        int count = reader.ReadMapHeader();
        reader.EnterNested();
        var result = new Dictionary<TKey, TValue>(count);
        for (int i = 0; i < count; i++)
        {
            TKey key = _key.Deserialize(ref reader);
            if (!result.TryAdd(key, _value.Deserialize(ref reader)))
                throw new MessagePackException($"The map at byte {at} holds the key '{key}' twice.");
        }

        reader.LeaveNested();
        return result;
    }
}
