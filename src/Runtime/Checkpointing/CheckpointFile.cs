using System;
using System.Buffers.Binary;
using System.Numerics;
using System.Runtime.InteropServices;
using System.Security.Cryptography;
using PipelineDsl.Serialization;

namespace PipelineDsl.Checkpointing;

/// <summary>What an intact checkpoint file's envelope says about it, and its body.</summary>
/// <param name="Version">The envelope version (1, 2 or 3).</param>
/// <param name="Kind">metadata, offsets, commit or snapshot.</param>
/// <param name="PipelineId">The pipeline that wrote it.</param>
/// <param name="CheckpointId">The identity of the checkpoint it was written into (version 3 on); null before.</param>
/// <param name="Batch">The batch it belongs to (version 3 on; -1 for metadata); null before.</param>
/// <param name="Body">The body's bytes, a MessagePack value.</param>
internal sealed record CheckpointEnvelope(int Version, string Kind, string PipelineId, string? CheckpointId, long? Batch, ReadOnlyMemory<byte> Body);

/// <summary>
/// The envelope of every checkpoint file: a plain MessagePack map. Version 3 (written now):
/// <c>{"format": "pipelinedsl-checkpoint", "version": 3, "kind": …, "pipeline": …, "checkpoint": id, "batch": N, "body": …, "crc32c": bin4}</c>.
/// The body is an ordinary MessagePack value (any msgpack tool shows it). <c>crc32c</c> is the CRC-32C
/// (Castagnoli, as Kafka and RocksDB use for the same purpose), big-endian, of every byte of the file
/// before the <c>crc32c</c> key: the header is covered as well as the body, so one flipped bit in the
/// pipeline id, the kind or the batch is damage, not a different, valid-looking file. <c>checkpoint</c> is
/// the random identity of the checkpoint the file was written into (it is in the metadata file too) and
/// <c>batch</c> the batch the file belongs to: a file copied from another checkpoint, or from another batch's
/// name, is recognised as foreign even though it is intact.
/// Older envelopes are still read: version 2 (the same map without <c>checkpoint</c> and <c>batch</c>, the
/// CRC-32C over the body only) and version 1 (<c>checksum</c>: the first 8 bytes of the body's SHA-256).
/// (CRC-32C runs in hardware and costs a small fraction of SHA-256 on the megabytes of state a batch can
/// write; it detects damage, and the identity fields detect mix-ups; no attacker is in this threat model.)
/// </summary>
internal static class CheckpointFile
{
    public const string Format = "pipelinedsl-checkpoint";
    public const int Version = 3;

    /// <summary>The largest checkpoint file read; a larger one is treated as damaged rather than read into memory.</summary>
    public const long MaxFileBytes = int.MaxValue - 64;

    public static byte[] Wrap(string kind, string pipelineId, string checkpointId, long batch, ReadOnlySpan<byte> body)
    {
        var writer = new MessagePackWriter(body.Length + 160);
        WrapInto(writer, kind, pipelineId, checkpointId, batch, body);
        return writer.ToArray();
    }

    /// <summary>Writes the envelope around <paramref name="body"/> into <paramref name="writer"/> (cleared first), for callers that reuse buffers.</summary>
    public static void WrapInto(MessagePackWriter writer, string kind, string pipelineId, string checkpointId, long batch, ReadOnlySpan<byte> body)
    {
        writer.Clear();
        writer.WriteMapHeader(8);
        writer.Write("format");
        writer.Write(Format);
        writer.Write("version");
        writer.Write((long)Version);
        writer.Write("kind");
        writer.Write(kind);
        writer.Write("pipeline");
        writer.Write(pipelineId);
        writer.Write("checkpoint");
        writer.Write(checkpointId);
        writer.Write("batch");
        writer.Write(batch);
        writer.Write("body");
        writer.WriteRaw(body);
        uint crc = Crc32C(writer.WrittenSpan);
        writer.Write("crc32c");
        Span<byte> bytes = stackalloc byte[4];
        BinaryPrimitives.WriteUInt32BigEndian(bytes, crc);
        writer.WriteBinary(bytes);
    }

    /// <summary>Checks the envelope's format, version, kind and checksum, and returns what it says.</summary>
    /// <exception cref="CheckpointCorruptException">The file is not an intact checkpoint file of that kind.</exception>
    public static CheckpointEnvelope Open(ReadOnlyMemory<byte> file, string expectedKind, string name)
    {
        try
        {
            var reader = new MessagePackReader(file.Span);
            int fields = reader.ReadMapHeader();
            string? format = null, kind = null, pipeline = null, checkpoint = null;
            long version = -1;
            long? batch = null;
            int bodyStart = -1, bodyLength = 0, crcKeyStart = -1;
            byte[]? checksum = null, crc = null;
            for (int i = 0; i < fields; i++)
            {
                int keyStart = reader.Position;
                switch (reader.ReadString())
                {
                    case "format": format = reader.ReadString(); break;
                    case "version": version = reader.ReadInt64(); break;
                    case "kind": kind = reader.ReadString(); break;
                    case "pipeline": pipeline = reader.ReadString(); break;
                    case "checkpoint": checkpoint = reader.ReadString(); break;
                    case "batch": batch = reader.ReadInt64(); break;
                    case "body":
                        bodyStart = reader.Position;
                        bodyLength = reader.ReadRaw().Length;
                        break;
                    case "checksum": checksum = reader.ReadBinary(); break;
                    case "crc32c":
                        crcKeyStart = keyStart;
                        crc = reader.ReadBinary();
                        break;
                    default: reader.Skip(); break;
                }
            }

            if (!reader.End) throw new CheckpointCorruptException($"Checkpoint file '{name}' has {reader.Remaining} bytes after its end.");
            if (format != Format) throw new CheckpointCorruptException($"'{name}' is not a PipelineDsl checkpoint file (format '{format}').");
            if (version > Version) throw new CheckpointCorruptException($"Checkpoint file '{name}' has envelope version {version}; this runtime reads up to {Version}. Upgrade PipelineDsl.");
            if (version < 1) throw new CheckpointCorruptException($"Checkpoint file '{name}' has no valid envelope version ({version}).");
            if (bodyStart < 0 || (checksum is null && crc is null)) throw new CheckpointCorruptException($"Checkpoint file '{name}' has no body or no checksum.");
            var body = file.Slice(bodyStart, bodyLength);
            bool intact = version switch
            {
                // Everything before the crc32c key, which must come last, so that no byte of the header escapes it.
                >= 3 => crc is { Length: 4 } && crcKeyStart >= 0 && crcKeyStart + 1 + 6 + 1 + 1 + 4 == file.Length
                        && BinaryPrimitives.ReadUInt32BigEndian(crc) == Crc32C(file.Span[..crcKeyStart]),
                2 => crc is { Length: 4 } && BinaryPrimitives.ReadUInt32BigEndian(crc) == Crc32C(body.Span),
                _ => checksum is not null && checksum.AsSpan().SequenceEqual(SHA256.HashData(body.Span).AsSpan(0, 8)),
            };
            if (!intact) throw new CheckpointCorruptException($"Checkpoint file '{name}' fails its checksum: it was truncated or altered.");
            if (version >= 3 && (checkpoint is null || batch is null))
                throw new CheckpointCorruptException($"Checkpoint file '{name}' lacks its checkpoint identity or batch number.");
            if (kind != expectedKind) throw new CheckpointCorruptException($"Checkpoint file '{name}' is a '{kind}' file where a '{expectedKind}' file was expected.");
            return new CheckpointEnvelope((int)version, kind!, pipeline ?? "", version >= 3 ? checkpoint : null, version >= 3 ? batch : null, body);
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
