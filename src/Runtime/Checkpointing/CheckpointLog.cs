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

/// <summary>What the metadata file says: the manifest the checkpoint was created with, and its identity.</summary>
/// <param name="Manifest">The manifest JSON stored when the checkpoint was created.</param>
/// <param name="CheckpointId">The checkpoint's identity, or null for a checkpoint created before identities existed (envelope version 1 or 2).</param>
/// <param name="LegacyThroughBatch">The newest batch whose files may still carry an older envelope without the identity (-1: none).</param>
internal sealed record CheckpointMetadata(string? Manifest, string? CheckpointId, long LegacyThroughBatch);

/// <summary>
/// The checkpoint's files and their formats, and the one place that decides whether a file belongs to this
/// checkpoint. Layout: <c>metadata</c>; <c>offsets/N</c> written before batch N runs; <c>commits/N</c> after
/// its sinks succeed; <c>state/N</c>, a snapshot of all state after batch N (every K batches). N is
/// zero-padded to 19 digits so that names sort in batch order.
/// </summary>
/// <remarks>
/// Every file carries the pipeline id, the checkpoint's random identity (from <c>metadata</c>) and its batch
/// number in its envelope, under the checksum. A file whose pipeline, identity or batch disagrees with where
/// it lies is foreign (copied from another checkpoint or renamed from another batch) and is treated exactly
/// like a damaged file: never trusted, and recovery falls back as it does for damage. A checkpoint created
/// by an older build (no identity) gets one the first time a newer build opens it; the files it already
/// holds (up to <see cref="CheckpointMetadata.LegacyThroughBatch"/>) are read with their older envelopes,
/// and every file after that must carry the identity.
/// </remarks>
internal sealed class CheckpointLog
{
    private readonly ICheckpointStore _store;
    private readonly string _pipelineId;
    private string? _checkpointId;
    private long _legacyThroughBatch = -1;

    /// <summary>The clock of <c>createdAt</c> (a test driver's own clock makes checkpoints byte-identical run after run).</summary>
    public TimeProvider Clock { get; set; } = TimeProvider.System;

    /// <summary>Makes a new checkpoint's identity (random by default; a test driver's is deterministic).</summary>
    public Func<string> NewIdentity { get; set; } = () => Guid.NewGuid().ToString("N");

    public CheckpointLog(ICheckpointStore store, string pipelineId)
    {
        _store = store;
        _pipelineId = pipelineId;
    }

    public ICheckpointStore Store => _store;

    /// <summary>
    /// Told of every offsets, commit and snapshot file this log wrote: its kind (<c>offsets</c>, <c>commit</c>,
    /// <c>snapshot</c>), its size in bytes and how long the write took. Null (the default) times nothing.
    /// </summary>
    public Action<string, long, TimeSpan>? FileWritten { get; set; }

    private Task Observed(string kind, long bytes, Func<Task> write)
    {
        var observer = FileWritten;
        if (observer is null) return write();
        return Timed();

        async Task Timed()
        {
            long started = System.Diagnostics.Stopwatch.GetTimestamp();
            await write().ConfigureAwait(false);
            observer(kind, bytes, System.Diagnostics.Stopwatch.GetElapsedTime(started));
        }
    }

    /// <summary>The pipeline whose checkpoint this is.</summary>
    public string PipelineId => _pipelineId;

    /// <summary>The checkpoint's identity; known once the metadata was read or written.</summary>
    public string CheckpointId => _checkpointId ?? throw new InvalidOperationException("The checkpoint's metadata has not been read yet.");

    public static string Name(string folder, long batchId) => folder + "/" + batchId.ToString("D19", CultureInfo.InvariantCulture);

    public static long? BatchOf(string name)
    {
        int slash = name.LastIndexOf('/');
        return long.TryParse(name.AsSpan(slash + 1), NumberStyles.None, CultureInfo.InvariantCulture, out long id) ? id : null;
    }

    // ---- metadata ------------------------------------------------------------------------------

    /// <summary>Reads <c>metadata</c> (null when there is none) and takes the checkpoint's identity from it.</summary>
    public async Task<CheckpointMetadata?> ReadMetadataAsync(CancellationToken ct)
    {
        var bytes = await _store.ReadAsync("metadata", ct).ConfigureAwait(false);
        if (bytes is null) return null;
        var envelope = CheckpointFile.Open(bytes, "metadata", "metadata");
        if (envelope.PipelineId != _pipelineId)
            throw new CheckpointMismatchException(
                $"The checkpoint '{_store.Location}' belongs to pipeline '{envelope.PipelineId}', not '{_pipelineId}'. Use another checkpoint directory for this pipeline, or run '{envelope.PipelineId}' on it.");
        try
        {
            var reader = new MessagePackReader(envelope.Body.Span);
            string? manifest = null;
            long legacyThrough = -1;
            int fields = reader.ReadMapHeader();
            for (int i = 0; i < fields; i++)
            {
                switch (reader.ReadString())
                {
                    case "manifest": manifest = reader.ReadString(); break;
                    case "legacyThroughBatch": legacyThrough = reader.ReadInt64(); break;
                    default: reader.Skip(); break;
                }
            }

            if (envelope.CheckpointId is null)
            {
                // Created by a build before identities: every file there now is legacy (until it is adopted).
                legacyThrough = await NewestBatchAsync(ct).ConfigureAwait(false);
            }
            else if (envelope.CheckpointId.Length == 0)
            {
                throw new CheckpointCorruptException("The metadata file has an empty checkpoint identity.");
            }

            _checkpointId = envelope.CheckpointId;
            _legacyThroughBatch = legacyThrough;
            return new CheckpointMetadata(manifest, envelope.CheckpointId, legacyThrough);
        }
        catch (MessagePackException e)
        {
            throw new CheckpointCorruptException($"Checkpoint file 'metadata' does not decode: {e.Message}", e);
        }
    }

    /// <summary>Writes the metadata of a new checkpoint, with a new random identity.</summary>
    public Task CreateMetadataAsync(string manifestJson, CancellationToken ct) => WriteMetadataAsync(manifestJson, NewIdentity(), legacyThroughBatch: -1, ct);

    /// <summary>
    /// Gives a checkpoint created by an older build its identity: rewrites <c>metadata</c> (atomically, with the
    /// same manifest) and records the newest batch of the files already there, which keep their older envelopes.
    /// </summary>
    public Task AdoptLegacyAsync(string manifestJson, CancellationToken ct) => WriteMetadataAsync(manifestJson, NewIdentity(), _legacyThroughBatch, ct);

    private async Task WriteMetadataAsync(string manifestJson, string checkpointId, long legacyThroughBatch, CancellationToken ct)
    {
        var w = new MessagePackWriter();
        w.WriteMapHeader(legacyThroughBatch >= 0 ? 3 : 2);
        w.Write("createdAt");
        w.Write(Clock.GetUtcNow().UtcDateTime);
        w.Write("manifest");
        w.Write(manifestJson);
        if (legacyThroughBatch >= 0)
        {
            w.Write("legacyThroughBatch");
            w.Write(legacyThroughBatch);
        }

        await _store.WriteAsync("metadata", CheckpointFile.Wrap("metadata", _pipelineId, checkpointId, -1, w.WrittenSpan), durable: true, ct).ConfigureAwait(false);
        _checkpointId = checkpointId;
        _legacyThroughBatch = legacyThroughBatch;
    }


    private async Task<long> NewestBatchAsync(CancellationToken ct)
    {
        long newest = -1;
        foreach (var folder in new[] { "offsets", "commits", "state" })
        {
            var files = await ListAsync(folder, ct).ConfigureAwait(false);
            if (files.Count > 0) newest = Math.Max(newest, files[^1].Batch);
        }

        return newest;
    }

    /// <summary>
    /// Opens a file of this checkpoint: checks its envelope (<see cref="CheckpointFile.Open"/>) and that it
    /// belongs here: this pipeline, this checkpoint's identity, the batch its name says.
    /// </summary>
    /// <exception cref="CheckpointCorruptException">The file is damaged or foreign; the message names it and says which.</exception>
    private CheckpointEnvelope OpenFile(byte[] bytes, string kind, string name)
    {
        var envelope = CheckpointFile.Open(bytes, kind, name);
        if (envelope.PipelineId != _pipelineId)
            throw new CheckpointCorruptException($"Checkpoint file '{name}' belongs to pipeline '{envelope.PipelineId}', not '{_pipelineId}': it was copied from another checkpoint and is not used.");
        long batch = BatchOf(name) ?? -1;
        if (envelope.CheckpointId is not null)
        {
            if (envelope.CheckpointId != _checkpointId)
                throw new CheckpointCorruptException(
                    $"Checkpoint file '{name}' belongs to another checkpoint (identity {envelope.CheckpointId}; this one is {_checkpointId ?? "from an older build"}): it was copied in and is not used.");
            if (envelope.Batch != batch)
                throw new CheckpointCorruptException($"Checkpoint file '{name}' holds batch {envelope.Batch}: it was copied or renamed from another batch's file and is not used.");
        }
        else if (batch > _legacyThroughBatch)
        {
            throw new CheckpointCorruptException(
                $"Checkpoint file '{name}' has the older envelope version {envelope.Version} without a checkpoint identity, but this checkpoint writes identities "
                + (_legacyThroughBatch >= 0 ? $"since batch {_legacyThroughBatch + 1}" : "for every batch") + ": it is a stale or foreign file and is not used.");
        }

        return envelope;
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
        // Durable before the batch runs: a replay must read exactly these ranges. Created, never replaced: see CreateAsync.
        var file = CheckpointFile.Wrap("offsets", _pipelineId, CheckpointId, record.BatchId, w.WrittenSpan);
        return Observed("offsets", file.Length, () => CreateAsync(name, file, durable: true, IsIntactOffsetsAsync, ct));
    }

    private async Task<bool> IsIntactOffsetsAsync(string name, CancellationToken ct)
    {
        try
        {
            await ReadOffsetsAsync(name, ct).ConfigureAwait(false);
            return true;
        }
        catch (CheckpointCorruptException)
        {
            return false;
        }
    }

    /// <summary>
    /// Writes a batch's offsets or commit file only if none is there: a file of this batch that is already there was
    /// written by another process that holds the checkpoint now (this one was paused or cut off and did not notice),
    /// and replacing it would put a different plan or state under a batch the other process already ran on. Then
    /// this process is fenced. Two cases are not a conflict: the same bytes (an earlier attempt of this very write
    /// landed, and its answer was lost), and a damaged file (which recovery did not trust; it is replaced as before).
    /// </summary>
    private async Task CreateAsync(string name, ReadOnlyMemory<byte> content, bool durable, Func<string, CancellationToken, Task<bool>> isIntact, CancellationToken ct)
    {
        if (await _store.TryCreateAsync(name, content, durable, ct).ConfigureAwait(false)) return;
        var existing = await _store.ReadAsync(name, ct).ConfigureAwait(false);
        if (existing is not null && existing.AsSpan().SequenceEqual(content.Span)) return;
        if (existing is null || !await isIntact(name, ct).ConfigureAwait(false))
        {
            await _store.WriteAsync(name, content, durable, ct).ConfigureAwait(false);
            return;
        }

        throw new CheckpointFencedException(
            $"Checkpoint file '{name}' in '{_store.Location}' was written by another process meanwhile: another instance of pipeline '{_pipelineId}' holds the checkpoint now "
            + "(this one was paused or cut off and did not notice). This process writes nothing more and stops; the other continues exactly.");
    }

    public async Task<OffsetRecord> ReadOffsetsAsync(string name, CancellationToken ct)
    {
        var bytes = await _store.ReadAsync(name, ct).ConfigureAwait(false) ?? throw new CheckpointCorruptException($"Checkpoint file '{name}' is missing.");
        var body = OpenFile(bytes, "offsets", name).Body;
        try
        {
            var r = new MessagePackReader(body.Span);
            long batch = -1, planned = 0;
            bool hasSources = false;
            var sources = new SortedDictionary<string, SortedDictionary<string, PartitionRange>>(StringComparer.Ordinal);
            int fields = r.ReadMapHeader();
            for (int i = 0; i < fields; i++)
            {
                switch (r.ReadString())
                {
                    case "batch": batch = r.ReadInt64(); break;
                    case "plannedAt": planned = r.ReadInt64(); break;
                    case "sources":
                        hasSources = true;
                        int count = r.ReadMapHeader();
                        for (int s = 0; s < count; s++)
                        {
                            string source = r.ReadString() ?? throw new CheckpointCorruptException($"'{name}' has a null source id.");
                            if (sources.ContainsKey(source)) throw new CheckpointCorruptException($"'{name}' lists source '{source}' twice.");
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

            if (batch != BatchOf(name)) throw new CheckpointCorruptException($"'{name}' records batch {batch}: it was copied or renamed from another batch's file and is not used.");
            if (!hasSources) throw new CheckpointCorruptException($"'{name}' has no planned sources: it is not used.");
            // A time a clock can have given (years 1 to 9999): a damaged one would otherwise fail the batch's progress record.
            if (planned is < -62135596800000 or > 253402300799999)
                throw new CheckpointCorruptException($"'{name}' records planning time {planned} ms, which no clock gives: it is not used.");
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

        CheckpointFile.WrapInto(buffers.File, "commit", _pipelineId, CheckpointId, record.BatchId, w.WrittenSpan);

        // Atomic but not fsynced: if a power loss takes the commit of batch N away, either offsets/N+1 (durable,
        // and written only after N committed) proves it, or batch N simply runs again, which sinks absorb.
        // Created, never replaced: see CreateAsync.
        var file = buffers.File.WrittenMemory;
        return Observed("commit", file.Length, () => CreateAsync(Name("commits", record.BatchId), file, durable: false, IsValidCommitAsync, ct));
    }

    /// <summary>
    /// What an intact commit file of batch N says. A commit whose file is missing, damaged or foreign is not
    /// proved by the file (the runner may still prove it by a later offsets file or a snapshot).
    /// </summary>
    /// <param name="Intact">The file is an intact commit file of its batch, of this checkpoint.</param>
    /// <param name="Delta">Its state delta (null when it holds none).</param>
    /// <param name="Problem">Why it is not intact, naming the file.</param>
    internal sealed record CommitFile(bool Intact, byte[]? Delta, string? Problem);

    /// <summary>Reads <c>commits/N</c>: never throws for a missing, damaged or foreign file, but says why.</summary>
    public async Task<CommitFile> ReadCommitAsync(string name, CancellationToken ct)
    {
        byte[]? bytes;
        try
        {
            bytes = await _store.ReadAsync(name, ct).ConfigureAwait(false);
        }
        catch (CheckpointCorruptException e)
        {
            return new CommitFile(false, null, e.Message);
        }

        if (bytes is null) return new CommitFile(false, null, $"Checkpoint file '{name}' is missing.");
        try
        {
            var body = OpenFile(bytes, "commit", name).Body;
            var r = new MessagePackReader(body.Span);
            int fields = r.ReadMapHeader();
            long batch = -1;
            byte[]? delta = null;
            bool hasState = false;
            for (int i = 0; i < fields; i++)
            {
                switch (r.ReadString())
                {
                    case "batch": batch = r.ReadInt64(); break;
                    case "state":
                        hasState = true;
                        delta = r.ReadRaw().ToArray();
                        break;
                    default: r.Skip(); break;
                }
            }

            if (batch != BatchOf(name))
                return new CommitFile(false, null, $"Checkpoint file '{name}' records batch {batch}: it was copied or renamed from another batch's file and is not used.");
            return new CommitFile(true, hasState ? delta : null, null);
        }
        catch (CheckpointCorruptException e)
        {
            return new CommitFile(false, null, e.Message);
        }
        catch (MessagePackException e)
        {
            return new CommitFile(false, null, $"Checkpoint file '{name}' does not decode: {e.Message}");
        }
    }

    /// <summary>The state delta stored in an intact commit file, or null when the file is missing, damaged, foreign or holds none.</summary>
    public async Task<byte[]?> ReadCommitDeltaAsync(string name, CancellationToken ct) => (await ReadCommitAsync(name, ct).ConfigureAwait(false)).Delta;

    /// <summary>True when <paramref name="name"/> is an intact commit file of its batch, of this checkpoint.</summary>
    public async Task<bool> IsValidCommitAsync(string name, CancellationToken ct) => (await ReadCommitAsync(name, ct).ConfigureAwait(false)).Intact;

    // ---- snapshots -------------------------------------------------------------------------------

    /// <summary>Writes <c>state/N</c> around the body in <c>buffers.Body</c>, using <c>buffers.File</c> for the file's bytes.</summary>
    public Task WriteSnapshotAsync(long batchId, CommitBuffers buffers, CancellationToken ct)
    {
        CheckpointFile.WrapInto(buffers.File, "snapshot", _pipelineId, CheckpointId, batchId, buffers.Body.WrittenSpan);
        var file = buffers.File.WrittenMemory;
        return Observed("snapshot", file.Length, () => _store.WriteAsync(Name("state", batchId), file, durable: true, ct));
    }

    public async Task<ReadOnlyMemory<byte>> ReadSnapshotAsync(string name, CancellationToken ct)
    {
        var bytes = await _store.ReadAsync(name, ct).ConfigureAwait(false) ?? throw new CheckpointCorruptException($"Checkpoint file '{name}' is missing.");
        return OpenFile(bytes, "snapshot", name).Body;
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
