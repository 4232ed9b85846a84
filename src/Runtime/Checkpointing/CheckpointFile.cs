using System;
using System.Buffers.Binary;
using System.Numerics;
using System.Runtime.InteropServices;
using System.Security.Cryptography;
using PipelineDsl.Serialization;

namespace PipelineDsl.Checkpointing;

/// <summary>
/// The envelope of every checkpoint file: a plain MessagePack map
/// <c>{"format": "pipelinedsl-checkpoint", "version": 2, "kind": …, "pipeline": …, "body": …, "crc32c": bin4}</c>.
/// The body is an ordinary MessagePack value (any msgpack tool shows it); <c>crc32c</c> is the CRC-32C
/// (Castagnoli, as Kafka and RocksDB use for the same purpose) of the body's bytes, big-endian, so a torn,
/// truncated or altered file is detected and never trusted. Version 1 files, whose <c>checksum</c> is the
/// first 8 bytes of the body's SHA-256, are still read. (CRC-32C runs in hardware and costs a small fraction
/// of SHA-256 on the megabytes of state a batch can write; no attacker is in this threat model.)
/// </summary>
internal static class CheckpointFile
{
    public const string Format = "pipelinedsl-checkpoint";
    public const int Version = 2;

    public static byte[] Wrap(string kind, string pipelineId, ReadOnlySpan<byte> body)
    {
        var writer = new MessagePackWriter(body.Length + 128);
        WrapInto(writer, kind, pipelineId, body);
        return writer.ToArray();
    }

    /// <summary>Writes the envelope around <paramref name="body"/> into <paramref name="writer"/> (cleared first), for callers that reuse buffers.</summary>
    public static void WrapInto(MessagePackWriter writer, string kind, string pipelineId, ReadOnlySpan<byte> body)
    {
        writer.Clear();
        writer.WriteMapHeader(6);
        writer.Write("format");
        writer.Write(Format);
        writer.Write("version");
        writer.Write((long)Version);
        writer.Write("kind");
        writer.Write(kind);
        writer.Write("pipeline");
        writer.Write(pipelineId);
        writer.Write("body");
        writer.WriteRaw(body);
        writer.Write("crc32c");
        Span<byte> crc = stackalloc byte[4];
        BinaryPrimitives.WriteUInt32BigEndian(crc, Crc32C(body));
        writer.WriteBinary(crc);
    }

    /// <summary>Checks the envelope and returns the body's bytes.</summary>
    /// <exception cref="CheckpointCorruptException">The file is not an intact checkpoint file of that kind.</exception>
    public static ReadOnlyMemory<byte> Unwrap(byte[] file, string expectedKind, string name, out string pipelineId)
    {
        try
        {
            var reader = new MessagePackReader(file);
            int fields = reader.ReadMapHeader();
            string? format = null, kind = null, pipeline = null;
            long version = -1;
            int bodyStart = -1, bodyLength = 0;
            byte[]? checksum = null, crc = null;
            for (int i = 0; i < fields; i++)
            {
                switch (reader.ReadString())
                {
                    case "format": format = reader.ReadString(); break;
                    case "version": version = reader.ReadInt64(); break;
                    case "kind": kind = reader.ReadString(); break;
                    case "pipeline": pipeline = reader.ReadString(); break;
                    case "body":
                        bodyStart = reader.Position;
                        bodyLength = reader.ReadRaw().Length;
                        break;
                    case "checksum": checksum = reader.ReadBinary(); break;
                    case "crc32c": crc = reader.ReadBinary(); break;
                    default: reader.Skip(); break;
                }
            }

            if (!reader.End) throw new CheckpointCorruptException($"Checkpoint file '{name}' has {reader.Remaining} bytes after its end.");
            if (format != Format) throw new CheckpointCorruptException($"'{name}' is not a PipelineDsl checkpoint file (format '{format}').");
            if (version > Version) throw new CheckpointCorruptException($"Checkpoint file '{name}' has version {version}; this runtime reads up to {Version}. Upgrade PipelineDsl.");
            if (kind != expectedKind) throw new CheckpointCorruptException($"Checkpoint file '{name}' is a '{kind}' file where a '{expectedKind}' file was expected.");
            if (bodyStart < 0 || (checksum is null && crc is null)) throw new CheckpointCorruptException($"Checkpoint file '{name}' has no body or no checksum.");
            var body = new ReadOnlyMemory<byte>(file, bodyStart, bodyLength);
            bool intact = crc is not null
                ? crc.Length == 4 && BinaryPrimitives.ReadUInt32BigEndian(crc) == Crc32C(body.Span)
                : checksum.AsSpan().SequenceEqual(SHA256.HashData(body.Span).AsSpan(0, 8));
            if (!intact) throw new CheckpointCorruptException($"Checkpoint file '{name}' fails its checksum: it was truncated or altered.");
            pipelineId = pipeline ?? "";
            return body;
        }
        catch (MessagePackException e)
        {
            throw new CheckpointCorruptException($"Checkpoint file '{name}' does not decode: {e.Message}", e);
        }
    }

    /// <summary>CRC-32C of <paramref name="data"/> (initial value and final xor all ones, as in iSCSI and Kafka).</summary>
    internal static uint Crc32C(ReadOnlySpan<byte> data)
    {
        uint crc = uint.MaxValue;
        // BitOperations.Crc32C uses the CPU's CRC32 instruction where there is one, 8 bytes at a time.
        var words = MemoryMarshal.Cast<byte, ulong>(data);
        foreach (ulong w in words) crc = BitOperations.Crc32C(crc, BitConverter.IsLittleEndian ? w : BinaryPrimitives.ReverseEndianness(w));
        foreach (byte b in data[(words.Length * 8)..]) crc = BitOperations.Crc32C(crc, b);
        return ~crc;
    }
}
