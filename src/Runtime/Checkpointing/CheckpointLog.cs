using System;
using System.Collections.Generic;
using System.Globalization;
using System.Linq;
using System.Threading;
using System.Threading.Tasks;
using PipelineDsl.Serialization;

namespace PipelineDsl.Checkpointing;

/// <summary>The planned range of one source partition in one batch: positions [From, To).</summary>
internal readonly record struct PartitionRange(long From, long To)
{
    public long Count => To - From;
}

/// <summary><c>offsets/N</c>: what batch N reads, written before it is processed.</summary>
internal sealed record OffsetRecord(long BatchId, long PlannedAtMs, SortedDictionary<string, SortedDictionary<string, PartitionRange>> Sources);

/// <summary><c>commits/N</c>: batch N's sinks have its output. Also implied by a valid <c>offsets/N+1</c>.</summary>
internal sealed record CommitRecord(long BatchId, long CommittedAtMs, long InputRecords);

/// <summary>
/// Reusable buffers for one commit or snapshot file: its body and its envelope. Kept between writes so that
/// buffers grown once to the size state needs are not allocated again for every file.
/// </summary>
internal sealed class CommitBuffers
{
    public MessagePackWriter Body { get; } = new(1 << 12);

    public MessagePackWriter File { get; } = new(1 << 12);
}

/// <summary>
/// The checkpoint's files and their formats. Layout: <c>metadata</c>; <c>offsets/N</c> written before batch
/// N runs; <c>commits/N</c> after its sinks succeed; <c>state/N</c>, a snapshot of all state after batch N
/// (every K batches). N is zero-padded to 19 digits so that names sort in batch order.
/// </summary>
internal sealed class CheckpointLog
{
    private readonly ICheckpointStore _store;
    private readonly string _pipelineId;

    public CheckpointLog(ICheckpointStore store, string pipelineId)
    {
        _store = store;
        _pipelineId = pipelineId;
    }

    public ICheckpointStore Store => _store;

    public static string Name(string folder, long batchId) => folder + "/" + batchId.ToString("D19", CultureInfo.InvariantCulture);

    public static long? BatchOf(string name)
    {
        int slash = name.LastIndexOf('/');
        return long.TryParse(name.AsSpan(slash + 1), NumberStyles.None, CultureInfo.InvariantCulture, out long id) ? id : null;
    }

    // ---- metadata ------------------------------------------------------------------------------

    public async Task<string?> ReadMetadataManifestAsync(CancellationToken ct)
    {
        var bytes = await _store.ReadAsync("metadata", ct).ConfigureAwait(false);
        if (bytes is null) return null;
        var body = CheckpointFile.Unwrap(bytes, "metadata", "metadata", out string pipeline);
        if (pipeline != _pipelineId)
            throw new CheckpointMismatchException(
                $"The checkpoint '{_store.Location}' belongs to pipeline '{pipeline}', not '{_pipelineId}'. Use another checkpoint directory for this pipeline, or run '{pipeline}' on it.");
        var reader = new MessagePackReader(body.Span);
        string? manifest = null;
        int fields = reader.ReadMapHeader();
        for (int i = 0; i < fields; i++)
        {
            if (reader.ReadString() == "manifest") manifest = reader.ReadString();
            else reader.Skip();
        }

        return manifest;
    }

    public Task WriteMetadataAsync(string manifestJson, CancellationToken ct)
    {
        var w = new MessagePackWriter();
        w.WriteMapHeader(2);
        w.Write("createdAt");
        w.Write(DateTime.UtcNow);
        w.Write("manifest");
        w.Write(manifestJson);
        return _store.WriteAsync("metadata", CheckpointFile.Wrap("metadata", _pipelineId, w.WrittenSpan), durable: true, ct);
    }

    // ---- offsets ---------------------------------------------------------------------------------

    public Task WriteOffsetsAsync(OffsetRecord record, CancellationToken ct)
    {
        var w = new MessagePackWriter();
        w.WriteMapHeader(3);
        w.Write("batch");
        w.Write(record.BatchId);
        w.Write("plannedAt");
        w.Write(record.PlannedAtMs);
        w.Write("sources");
        w.WriteMapHeader(record.Sources.Count);
        foreach (var (source, partitions) in record.Sources)
        {
            w.Write(source);
            w.WriteMapHeader(partitions.Count);
            foreach (var (partition, range) in partitions)
            {
                w.Write(partition);
                w.WriteArrayHeader(2);
                w.Write(range.From);
                w.Write(range.To);
            }
        }

        string name = Name("offsets", record.BatchId);
        // Durable before the batch runs: a replay must read exactly these ranges.
        return _store.WriteAsync(name, CheckpointFile.Wrap("offsets", _pipelineId, w.WrittenSpan), durable: true, ct);
    }

    public async Task<OffsetRecord> ReadOffsetsAsync(string name, CancellationToken ct)
    {
        var bytes = await _store.ReadAsync(name, ct).ConfigureAwait(false) ?? throw new CheckpointCorruptException($"Checkpoint file '{name}' is missing.");
        var body = CheckpointFile.Unwrap(bytes, "offsets", name, out _);
        try
        {
            var r = new MessagePackReader(body.Span);
            long batch = -1, planned = 0;
            var sources = new SortedDictionary<string, SortedDictionary<string, PartitionRange>>(StringComparer.Ordinal);
            int fields = r.ReadMapHeader();
            for (int i = 0; i < fields; i++)
            {
                switch (r.ReadString())
                {
                    case "batch": batch = r.ReadInt64(); break;
                    case "plannedAt": planned = r.ReadInt64(); break;
                    case "sources":
                        int count = r.ReadMapHeader();
                        for (int s = 0; s < count; s++)
                        {
                            string source = r.ReadString() ?? throw new CheckpointCorruptException($"'{name}' has a null source id.");
                            var partitions = new SortedDictionary<string, PartitionRange>(StringComparer.Ordinal);
                            int pc = r.ReadMapHeader();
                            for (int p = 0; p < pc; p++)
                            {
                                string partition = r.ReadString() ?? throw new CheckpointCorruptException($"'{name}' has a null partition.");
                                if (r.ReadArrayHeader() != 2) throw new CheckpointCorruptException($"'{name}' has a malformed range.");
                                long from = r.ReadInt64(), to = r.ReadInt64();
                                if (from < 0 || to < from) throw new CheckpointCorruptException($"'{name}' has an invalid range [{from}, {to}) for {source}/{partition}.");
                                partitions.Add(partition, new PartitionRange(from, to));
                            }

                            sources.Add(source, partitions);
                        }

                        break;
                    default: r.Skip(); break;
                }
            }

            if (batch != BatchOf(name)) throw new CheckpointCorruptException($"'{name}' records batch {batch}.");
            return new OffsetRecord(batch, planned, sources);
        }
        catch (Exception e) when (e is MessagePackException or ArgumentException)
        {
            throw new CheckpointCorruptException($"Checkpoint file '{name}' does not decode: {e.Message}", e);
        }
    }

    // ---- commits ---------------------------------------------------------------------------------

    /// <summary>
    /// Writes <c>commits/N</c>. <paramref name="writeStateDelta"/>, when given, writes the batch's state delta
    /// straight into the commit body; <paramref name="buffers"/> are reused and must not be handed to another
    /// write until the returned task completes.
    /// </summary>
    public Task WriteCommitAsync(CommitRecord record, Action<MessagePackWriter>? writeStateDelta, CommitBuffers buffers, CancellationToken ct)
    {
        var w = buffers.Body;
        w.Clear();
        w.WriteMapHeader(writeStateDelta is null ? 3 : 4);
        w.Write("batch");
        w.Write(record.BatchId);
        w.Write("committedAt");
        w.Write(record.CommittedAtMs);
        w.Write("inputRecords");
        w.Write(record.InputRecords);
        if (writeStateDelta is not null)
        {
            w.Write("state");
            writeStateDelta(w);
        }

        CheckpointFile.WrapInto(buffers.File, "commit", _pipelineId, w.WrittenSpan);

        // Atomic but not fsynced: if a power loss takes the commit of batch N away, either offsets/N+1 (durable,
        // and written only after N committed) proves it, or batch N simply runs again, which sinks absorb.
        return _store.WriteAsync(Name("commits", record.BatchId), buffers.File.WrittenMemory, durable: false, ct);
    }

    /// <summary>The state delta stored in an intact commit file, or null when the file is missing, damaged or holds none.</summary>
    public async Task<byte[]?> ReadCommitDeltaAsync(string name, CancellationToken ct)
    {
        var bytes = await _store.ReadAsync(name, ct).ConfigureAwait(false);
        if (bytes is null) return null;
        try
        {
            var body = CheckpointFile.Unwrap(bytes, "commit", name, out _);
            var r = new MessagePackReader(body.Span);
            int fields = r.ReadMapHeader();
            long batch = -1;
            byte[]? delta = null;
            for (int i = 0; i < fields; i++)
            {
                switch (r.ReadString())
                {
                    case "batch": batch = r.ReadInt64(); break;
                    case "state": delta = r.ReadRaw().ToArray(); break;
                    default: r.Skip(); break;
                }
            }

            return batch == BatchOf(name) ? delta : null;
        }
        catch (Exception e) when (e is CheckpointCorruptException or MessagePackException)
        {
            return null;
        }
    }

    /// <summary>True when <paramref name="name"/> is an intact commit file of its batch.</summary>
    public async Task<bool> IsValidCommitAsync(string name, CancellationToken ct)
    {
        var bytes = await _store.ReadAsync(name, ct).ConfigureAwait(false);
        if (bytes is null) return false;
        try
        {
            var body = CheckpointFile.Unwrap(bytes, "commit", name, out _);
            var r = new MessagePackReader(body.Span);
            int fields = r.ReadMapHeader();
            for (int i = 0; i < fields; i++)
            {
                if (r.ReadString() == "batch") return r.ReadInt64() == BatchOf(name);
                r.Skip();
            }

            return false;
        }
        catch (Exception e) when (e is CheckpointCorruptException or MessagePackException)
        {
            return false;
        }
    }

    // ---- snapshots -------------------------------------------------------------------------------

    /// <summary>Writes <c>state/N</c> around the body in <c>buffers.Body</c>, using <c>buffers.File</c> for the file's bytes.</summary>
    public Task WriteSnapshotAsync(long batchId, CommitBuffers buffers, CancellationToken ct)
    {
        CheckpointFile.WrapInto(buffers.File, "snapshot", _pipelineId, buffers.Body.WrittenSpan);
        return _store.WriteAsync(Name("state", batchId), buffers.File.WrittenMemory, durable: true, ct);
    }

    public async Task<ReadOnlyMemory<byte>> ReadSnapshotAsync(string name, CancellationToken ct)
    {
        var bytes = await _store.ReadAsync(name, ct).ConfigureAwait(false) ?? throw new CheckpointCorruptException($"Checkpoint file '{name}' is missing.");
        return CheckpointFile.Unwrap(bytes, "snapshot", name, out _);
    }

    public async Task<List<(long Batch, string Name)>> ListAsync(string folder, CancellationToken ct) =>
        (await _store.ListAsync(folder, ct).ConfigureAwait(false))
            .Select(n => (Batch: BatchOf(n), Name: n))
            .Where(x => x.Batch is not null)
            .Select(x => (x.Batch!.Value, x.Name))
            .OrderBy(x => x.Item1)
            .ToList();

    /// <summary>
    /// Keeps the newest <paramref name="retain"/> snapshots and every offset and commit file a restore from
    /// the oldest kept snapshot needs; deletes the rest.
    /// </summary>
    public async Task ApplyRetentionAsync(int retain, CancellationToken ct)
    {
        var snapshots = await ListAsync("state", ct).ConfigureAwait(false);
        if (snapshots.Count <= retain) return;
        var kept = snapshots.Skip(snapshots.Count - retain).ToList();
        long oldestKept = kept[0].Batch;
        foreach (var (_, name) in snapshots.Take(snapshots.Count - retain)) await _store.DeleteAsync(name, ct).ConfigureAwait(false);
        foreach (var folder in new[] { "offsets", "commits" })
        {
            foreach (var (batch, name) in await ListAsync(folder, ct).ConfigureAwait(false))
            {
                if (batch < oldestKept) await _store.DeleteAsync(name, ct).ConfigureAwait(false);
            }
        }
    }
}
