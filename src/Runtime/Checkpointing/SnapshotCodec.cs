using System;
using System.Collections.Generic;
using PipelineDsl.Serialization;

namespace PipelineDsl.Checkpointing;

/// <summary>One operator's part of a snapshot: its version and schema fingerprint when written, and its encoded entries.</summary>
/// <param name="Version">The operator's version in the build that wrote the snapshot.</param>
/// <param name="Fingerprint">Its state schema fingerprint then ("" when none was recorded).</param>
/// <param name="Entries">Its state, as its executor wrote it (one MessagePack value).</param>
/// <param name="Format">The layout of <paramref name="Entries"/> (null: written before format numbers were recorded).</param>
internal sealed record SnapshotOperator(long Version, string Fingerprint, ReadOnlyMemory<byte> Entries, long? Format);

/// <summary>What a snapshot body holds. Fields a damaged or foreign file lacks are null.</summary>
/// <param name="Batch">The batch after which the state was taken.</param>
/// <param name="ManifestJson">The manifest of the build that wrote it.</param>
/// <param name="Positions">Every source partition's position after that batch.</param>
/// <param name="Operators">Each stateful operator's state.</param>
internal sealed record SnapshotBody(
    long? Batch,
    string? ManifestJson,
    Dictionary<string, Dictionary<string, long>>? Positions,
    Dictionary<string, SnapshotOperator>? Operators)
{
    /// <summary>
    /// The structure every reader requires: a snapshot that passed its checksum but lacks what a restore needs
    /// is not trusted (restoring it would silently reset state or re-read all input), nor is one that holds
    /// another batch's state than its name says.
    /// </summary>
    public SnapshotBody CheckStructure(string name, long batch)
    {
        if (Positions is null) throw new CheckpointCorruptException($"Checkpoint file '{name}' has no source positions: it is not used.");
        if (Operators is null) throw new CheckpointCorruptException($"Checkpoint file '{name}' has no operator state: it is not used.");
        if (Batch is long b && b != batch)
            throw new CheckpointCorruptException($"Checkpoint file '{name}' holds the state after batch {b}: it was copied or renamed from another batch's snapshot and is not used.");
        return this;
    }
}

/// <summary>
/// The one owner of the format of a snapshot's body (<c>state/N</c>, inside its envelope): a map of
/// <c>batch</c>, <c>manifest</c>, <c>positions</c> (source → partition → position) and <c>operators</c>
/// (id → <c>version</c>, <c>fingerprint</c>, <c>format</c>, <c>entries</c>; <c>format</c> is absent in files written before format numbers were recorded). Unknown fields are skipped, so a newer writer
/// may add some; the runtime and the CLI both read through <see cref="Read"/>.
/// </summary>
internal static class SnapshotCodec
{
    /// <summary>One operator to write: its entries are written by <paramref name="WriteEntries"/> as one MessagePack value.</summary>
    internal readonly record struct OperatorPart(string Id, long Version, string Fingerprint, int Format, Action<MessagePackWriter> WriteEntries);

    public static void Write(
        MessagePackWriter w,
        long batchId,
        string manifestJson,
        IReadOnlyDictionary<string, SortedDictionary<string, long>> positions,
        IReadOnlyList<OperatorPart> operators)
    {
        w.Clear();
        w.WriteMapHeader(4);
        w.Write("batch");
        w.Write(batchId);
        w.Write("manifest");
        w.Write(manifestJson);
        w.Write("positions");
        w.WriteMapHeader(positions.Count);
        foreach (var (source, partitions) in positions)
        {
            w.Write(source);
            w.WriteMapHeader(partitions.Count);
            foreach (var (partition, position) in partitions)
            {
                w.Write(partition);
                w.Write(position);
            }
        }

        w.Write("operators");
        w.WriteMapHeader(operators.Count);
        foreach (var op in operators)
        {
            w.Write(op.Id);
            w.WriteMapHeader(4);
            w.Write("version");
            w.Write(op.Version);
            w.Write("fingerprint");
            w.Write(op.Fingerprint);
            w.Write("format");
            w.Write((long)op.Format);
            w.Write("entries");
            op.WriteEntries(w);
        }
    }

    /// <summary>
    /// Decodes a snapshot body; throws <see cref="MessagePackException"/> when it is not MessagePack of this
    /// shape, and <see cref="CheckpointCorruptException"/> (naming <paramref name="name"/>) when an operator
    /// has no entries. What the fields say is judged by the reader (see <c>RecoveryPlanner</c>).
    /// </summary>
    public static SnapshotBody Read(ReadOnlyMemory<byte> body, string name)
    {
        var r = new MessagePackReader(body.Span);
        int fields = r.ReadMapHeader();
        string? manifestJson = null;
        long? batch = null;
        Dictionary<string, Dictionary<string, long>>? positions = null;
        Dictionary<string, SnapshotOperator>? operators = null;
        for (int i = 0; i < fields; i++)
        {
            switch (r.ReadString())
            {
                case "manifest":
                    manifestJson = r.ReadString();
                    break;
                case "batch":
                    batch = r.ReadInt64();
                    break;
                case "positions":
                    positions = new Dictionary<string, Dictionary<string, long>>(StringComparer.Ordinal);
                    int sources = r.ReadMapHeader();
                    for (int s = 0; s < sources; s++)
                    {
                        string source = r.ReadString() ?? "";
                        var partitions = positions[source] = new Dictionary<string, long>(StringComparer.Ordinal);
                        int count = r.ReadMapHeader();
                        for (int p = 0; p < count; p++) partitions[r.ReadString() ?? ""] = r.ReadInt64();
                    }

                    break;
                case "operators":
                    operators = new Dictionary<string, SnapshotOperator>(StringComparer.Ordinal);
                    int ops = r.ReadMapHeader();
                    for (int o = 0; o < ops; o++)
                    {
                        string id = r.ReadString() ?? "";
                        long version = -1;
                        string fingerprint = "";
                        long? format = null;
                        int start = -1, length = 0;
                        int opFields = r.ReadMapHeader();
                        for (int f = 0; f < opFields; f++)
                        {
                            switch (r.ReadString())
                            {
                                case "version": version = r.ReadInt64(); break;
                                case "fingerprint": fingerprint = r.ReadString() ?? ""; break;
                                case "format": format = r.ReadInt64(); break;
                                case "entries":
                                    start = r.Position;
                                    length = r.ReadRaw().Length;
                                    break;
                                default: r.Skip(); break;
                            }
                        }

                        if (start < 0) throw new CheckpointCorruptException($"'{name}' has no entries for operator '{id}'.");
                        operators[id] = new SnapshotOperator(version, fingerprint, body.Slice(start, length), format);
                    }

                    break;
                default:
                    r.Skip();
                    break;
            }
        }

        return new SnapshotBody(batch, manifestJson, positions, operators);
    }
}
