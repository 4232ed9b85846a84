using System;
using System.Security.Cryptography;
using PipelineDsl.Serialization;

namespace PipelineDsl.Checkpointing;

/// <summary>
/// The envelope of every checkpoint file: a plain MessagePack map
/// <c>{"format": "pipelinedsl-checkpoint", "version": 1, "kind": …, "pipeline": …, "body": …, "checksum": bin8}</c>.
/// The body is an ordinary MessagePack value (any msgpack tool shows it); the checksum is the first 8 bytes
/// of the SHA-256 of the body's bytes, so a torn, truncated or altered file is detected and never trusted.
/// </summary>
internal static class CheckpointFile
{
    public const string Format = "pipelinedsl-checkpoint";
    public const int Version = 1;

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
        writer.Write("checksum");
        writer.WriteBinary(Checksum(body));
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
            byte[]? checksum = null;
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
                    default: reader.Skip(); break;
                }
            }

            if (!reader.End) throw new CheckpointCorruptException($"Checkpoint file '{name}' has {reader.Remaining} bytes after its end.");
            if (format != Format) throw new CheckpointCorruptException($"'{name}' is not a PipelineDsl checkpoint file (format '{format}').");
            if (version > Version) throw new CheckpointCorruptException($"Checkpoint file '{name}' has version {version}; this runtime reads up to {Version}. Upgrade PipelineDsl.");
            if (kind != expectedKind) throw new CheckpointCorruptException($"Checkpoint file '{name}' is a '{kind}' file where a '{expectedKind}' file was expected.");
            if (bodyStart < 0 || checksum is null) throw new CheckpointCorruptException($"Checkpoint file '{name}' has no body or no checksum.");
            var body = new ReadOnlyMemory<byte>(file, bodyStart, bodyLength);
            if (!checksum.AsSpan().SequenceEqual(Checksum(body.Span)))
                throw new CheckpointCorruptException($"Checkpoint file '{name}' fails its checksum: it was truncated or altered.");
            pipelineId = pipeline ?? "";
            return body;
        }
        catch (MessagePackException e)
        {
            throw new CheckpointCorruptException($"Checkpoint file '{name}' does not decode: {e.Message}", e);
        }
    }

    private static byte[] Checksum(ReadOnlySpan<byte> body) => SHA256.HashData(body)[..8];
}
