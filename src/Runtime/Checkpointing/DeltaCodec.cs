using System;
using System.Collections.Generic;
using PipelineDsl.Serialization;

namespace PipelineDsl.Checkpointing;

/// <summary>One operator's part of a batch's state delta.</summary>
/// <param name="OperatorId">The operator.</param>
/// <param name="Version">Its version in the build that wrote the delta (-1 when not recorded).</param>
/// <param name="KeySchema">Its state's key schema then (null when not recorded).</param>
/// <param name="ValueSchema">Its state's value schema then (null when not recorded).</param>
/// <param name="Delta">What the batch changed, as the executor wrote it; null when the entry has none (not written by PipelineDsl).</param>
/// <param name="Format">The layout of <paramref name="Delta"/> (null: written before format numbers were recorded).</param>
internal sealed record DeltaPart(string OperatorId, long Version, string? KeySchema, string? ValueSchema, ReadOnlyMemory<byte>? Delta, long? Format);

/// <summary>
/// The one owner of the format of the state delta inside a commit file (<c>commits/N</c>, field <c>state</c>):
/// a map of operator id → <c>version</c>, <c>key</c> and <c>value</c> (the state schemas, so that a later build
/// judges the delta with the rules of a snapshot), <c>format</c> (the layout of the executor's delta; absent in
/// older files) and <c>delta</c> (what batch N changed). Unknown fields are
/// skipped. The runtime and the CLI both read through <see cref="Read"/>.
/// </summary>
internal static class DeltaCodec
{
    /// <summary>One operator to write: its changes are written by <paramref name="WriteDelta"/> as one MessagePack value.</summary>
    internal readonly record struct OperatorPart(string Id, long Version, string KeySchema, string ValueSchema, int Format, Action<MessagePackWriter> WriteDelta);

    public static void Write(MessagePackWriter w, IReadOnlyList<OperatorPart> operators)
    {
        w.WriteMapHeader(operators.Count);
        foreach (var op in operators)
        {
            w.Write(op.Id);
            w.WriteMapHeader(5);
            w.Write("version");
            w.Write(op.Version);
            w.Write("key");
            w.Write(op.KeySchema);
            w.Write("value");
            w.Write(op.ValueSchema);
            w.Write("format");
            w.Write((long)op.Format);
            w.Write("delta");
            op.WriteDelta(w);
        }
    }

    /// <summary>Decodes a delta; throws <see cref="MessagePackException"/> when it is not MessagePack of this shape.</summary>
    public static List<DeltaPart> Read(ReadOnlyMemory<byte> delta)
    {
        var parts = new List<DeltaPart>();
        var r = new MessagePackReader(delta.Span);
        int ops = r.ReadMapHeader();
        for (int o = 0; o < ops; o++)
        {
            string id = r.ReadString() ?? "";
            long version = -1;
            string? keySchema = null, valueSchema = null;
            ReadOnlyMemory<byte>? changes = null;
            long? format = null;
            int fields = r.ReadMapHeader();
            for (int f = 0; f < fields; f++)
            {
                switch (r.ReadString())
                {
                    case "version": version = r.ReadInt64(); break;
                    case "key": keySchema = r.ReadString(); break;
                    case "value": valueSchema = r.ReadString(); break;
                    case "format": format = r.ReadInt64(); break;
                    case "delta":
                        int start = r.Position;
                        changes = delta.Slice(start, r.ReadRaw().Length);
                        break;
                    default: r.Skip(); break;
                }
            }

            parts.Add(new DeltaPart(id, version, keySchema, valueSchema, changes, format));
        }

        return parts;
    }
}
