using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Threading;
using System.Threading.Tasks;
using PipelineDsl.Graph;
using PipelineDsl.Serialization;

namespace PipelineDsl.Checkpointing;

/// <summary>
/// A read-only view of a checkpoint, for tools and monitoring: which batches it logged, committed and
/// snapshotted, where its sources were committed up to, and what state each operator holds. It never
/// writes and never takes the lock, so it can look at the checkpoint of a running pipeline (what it reports
/// may then be a batch behind). Files are judged by the runtime's own rules: a damaged or foreign file is
/// skipped, never trusted.
/// </summary>
public sealed class CheckpointReader
{
    private CheckpointReader(CheckpointLog log, CheckpointMetadata metadata, PipelineManifest manifest, IReadOnlyList<long> offsets, IReadOnlyList<long> commits, IReadOnlyList<long> snapshots)
    {
        Log = log;
        CheckpointId = metadata.CheckpointId;
        Manifest = manifest;
        OffsetBatches = offsets;
        CommitBatches = commits;
        SnapshotBatches = snapshots;
    }

    internal CheckpointLog Log { get; }

    /// <summary>Where the checkpoint is, for messages.</summary>
    public string Location => Log.Store.Location;

    /// <summary>The pipeline that wrote the checkpoint.</summary>
    public string PipelineId => Log.PipelineId;

    /// <summary>The checkpoint's identity, or null when an older build created it and no newer build has run on it yet.</summary>
    public string? CheckpointId { get; }

    /// <summary>The manifest the checkpoint was created with (the newest snapshot holds the one of the build that wrote it).</summary>
    public PipelineManifest Manifest { get; }

    /// <summary>The batches whose offsets (planned input ranges) are logged, oldest first.</summary>
    public IReadOnlyList<long> OffsetBatches { get; }

    /// <summary>The batches with a commit file, oldest first (intact or not: see <see cref="ReadCommittedPositionsAsync"/>).</summary>
    public IReadOnlyList<long> CommitBatches { get; }

    /// <summary>The batches with a snapshot file, oldest first (intact or not: see <see cref="ReadNewestSnapshotAsync"/>).</summary>
    public IReadOnlyList<long> SnapshotBatches { get; }

    /// <summary>Opens the checkpoint in a local directory.</summary>
    /// <exception cref="DirectoryNotFoundException">The directory does not exist.</exception>
    /// <exception cref="CheckpointMismatchException">It is not a PipelineDsl checkpoint, or its metadata is damaged.</exception>
    public static Task<CheckpointReader> OpenDirectoryAsync(string directory, CancellationToken cancellationToken = default)
    {
        if (!Directory.Exists(directory)) throw new DirectoryNotFoundException($"'{directory}' does not exist: give the checkpoint directory of a pipeline.");
        return OpenAsync(new LocalDirectoryCheckpointStore(directory), cancellationToken);
    }

    /// <summary>Opens the checkpoint held by <paramref name="store"/>.</summary>
    /// <exception cref="CheckpointMismatchException">It is not a PipelineDsl checkpoint, or its metadata is damaged.</exception>
    public static async Task<CheckpointReader> OpenAsync(ICheckpointStore store, CancellationToken cancellationToken = default)
    {
        if (store is null) throw new ArgumentNullException(nameof(store));
        var bytes = await store.ReadAsync("metadata", cancellationToken).ConfigureAwait(false)
            ?? throw new CheckpointMismatchException($"'{store.Location}' has no metadata file: it is not a PipelineDsl checkpoint.");
        CheckpointMetadata? metadata;
        CheckpointLog log;
        try
        {
            log = new CheckpointLog(store, CheckpointFile.Open(bytes, "metadata", "metadata").PipelineId);
            metadata = await log.ReadMetadataAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (CheckpointCorruptException e)
        {
            throw new CheckpointMismatchException($"The checkpoint '{store.Location}' has a damaged metadata file ({e.Message}).", e);
        }

        if (metadata?.Manifest is null) throw new CheckpointMismatchException($"The checkpoint '{store.Location}' has a metadata file without its manifest.");
        PipelineManifest manifest;
        try
        {
            manifest = PipelineManifest.Parse(metadata.Manifest);
        }
        catch (FormatException e)
        {
            throw new CheckpointMismatchException($"The checkpoint '{store.Location}' has a metadata file whose manifest does not parse ({e.Message}).", e);
        }

        async Task<IReadOnlyList<long>> BatchesAsync(string folder) => (await log.ListAsync(folder, cancellationToken).ConfigureAwait(false)).Select(f => f.Batch).ToList();
        return new CheckpointReader(log, metadata, manifest, await BatchesAsync("offsets").ConfigureAwait(false), await BatchesAsync("commits").ConfigureAwait(false), await BatchesAsync("state").ConfigureAwait(false));
    }

    /// <summary>
    /// The newest snapshot that is intact, of this checkpoint and of its batch, and well formed; null when there
    /// is none. Older snapshots stand in for damaged newer ones, as in a restore.
    /// </summary>
    public async Task<CheckpointSnapshot?> ReadNewestSnapshotAsync(CancellationToken cancellationToken = default)
    {
        foreach (long batch in SnapshotBatches.Reverse())
        {
            try
            {
                string name = CheckpointLog.Name("state", batch);
                var bytes = await Log.ReadSnapshotAsync(name, cancellationToken).ConfigureAwait(false);
                var body = SnapshotCodec.Read(bytes, name).CheckStructure(name, batch);
                PipelineManifest? manifest = body.ManifestJson is null ? null : PipelineManifest.Parse(body.ManifestJson);
                return new CheckpointSnapshot(batch, bytes.Length, manifest, body.Positions!, body.Operators!);
            }
            catch (Exception e) when (e is CheckpointCorruptException or MessagePackException or FormatException)
            {
                // Skipped, as the runtime would.
            }
        }

        return null;
    }

    /// <summary>
    /// Where every source partition was committed up to: the planned ends of the newest committed batch whose
    /// offsets file is intact; null when no committed batch has one (then <see cref="ReadNewestSnapshotAsync"/>
    /// has the positions, if any).
    /// </summary>
    public async Task<CommittedPositions?> ReadCommittedPositionsAsync(CancellationToken cancellationToken = default)
    {
        var skipped = new List<string>();
        foreach (long batch in CommitBatches.Where(OffsetBatches.Contains).OrderDescending())
        {
            try
            {
                var plan = await Log.ReadOffsetsAsync(CheckpointLog.Name("offsets", batch), cancellationToken).ConfigureAwait(false);
                var positions = plan.Sources.ToDictionary(
                    s => s.Key,
                    s => (IReadOnlyDictionary<string, long>)s.Value.ToDictionary(p => p.Key, p => p.Value.To, StringComparer.Ordinal),
                    StringComparer.Ordinal);
                return new CommittedPositions(batch, positions, skipped);
            }
            catch (CheckpointCorruptException e)
            {
                skipped.Add(e.Message);
            }
        }

        return skipped.Count == 0 ? null : new CommittedPositions(-1, new Dictionary<string, IReadOnlyDictionary<string, long>>(), skipped);
    }

    /// <summary>
    /// For each operator with a state delta in an intact commit after <paramref name="afterBatch"/>: the newest
    /// such delta's header (version and schemas), which a restore judges by the rules of a snapshot.
    /// </summary>
    internal async Task<Dictionary<string, DeltaPart>> ReadDeltaHeadersAfterAsync(long afterBatch, CancellationToken cancellationToken)
    {
        var result = new Dictionary<string, DeltaPart>(StringComparer.Ordinal);
        foreach (long batch in CommitBatches.Where(b => b > afterBatch).Order())
        {
            var delta = await Log.ReadCommitDeltaAsync(CheckpointLog.Name("commits", batch), cancellationToken).ConfigureAwait(false);
            if (delta is null) continue;
            foreach (var part in DeltaCodec.Read(delta)) result[part.OperatorId] = part;
        }

        return result;
    }
}

/// <summary>A snapshot as <see cref="CheckpointReader"/> reads it.</summary>
public sealed class CheckpointSnapshot
{
    internal CheckpointSnapshot(long batch, long sizeBytes, PipelineManifest? manifest, Dictionary<string, Dictionary<string, long>> positions, Dictionary<string, SnapshotOperator> operators)
    {
        Batch = batch;
        SizeBytes = sizeBytes;
        Manifest = manifest;
        Positions = positions.ToDictionary(p => p.Key, p => (IReadOnlyDictionary<string, long>)p.Value, StringComparer.Ordinal);
        Operators = operators.ToDictionary(p => p.Key, p => new OperatorSnapshot(p.Value), StringComparer.Ordinal);
    }

    /// <summary>The batch after which the state was taken.</summary>
    public long Batch { get; }

    /// <summary>The size of the snapshot's body in bytes.</summary>
    public long SizeBytes { get; }

    /// <summary>The manifest of the build that wrote it (null for a snapshot of a build that did not record one).</summary>
    public PipelineManifest? Manifest { get; }

    /// <summary>Source → partition → position after <see cref="Batch"/>.</summary>
    public IReadOnlyDictionary<string, IReadOnlyDictionary<string, long>> Positions { get; }

    /// <summary>Each stateful operator's state, by operator id.</summary>
    public IReadOnlyDictionary<string, OperatorSnapshot> Operators { get; }
}

/// <summary>One operator's state in a snapshot.</summary>
public sealed class OperatorSnapshot
{
    internal OperatorSnapshot(SnapshotOperator stored)
    {
        Version = stored.Version;
        Fingerprint = stored.Fingerprint;
        Entries = stored.Entries;
        Format = stored.Format;
    }

    // A state backend's file list (SharedStateFileSet) holds its key count; entries are counted from their array.
    internal long? Format { get; }

    /// <summary>The operator's version in the build that wrote the snapshot.</summary>
    public long Version { get; }

    /// <summary>Its state schema fingerprint then ("" when none was recorded).</summary>
    public string Fingerprint { get; }

    /// <summary>The size of its encoded state in bytes: the entries, or for a state backend's files (RocksDB) the files it lists.</summary>
    public long SizeBytes => Format == State.SharedStateFileSet.Format
        ? State.SharedStateFileSet.Read(Entries.Span, "snapshot").Files.Sum(f => f.Size)
        : Entries.Length;

    /// <summary>The number of entries (keys, or panes, sessions and buffered records for event-time operators); 1 for a single value.</summary>
    public long EntryCount
    {
        get
        {
            if (Format == State.SharedStateFileSet.Format) return State.SharedStateFileSet.Read(Entries.Span, "snapshot").Count;
            var r = new MessagePackReader(Entries.Span);
            return r.NextType == MessagePackType.Array ? r.ReadArrayHeader() : 1;
        }
    }

    /// <summary>The encoded state, as the operator's executor wrote it.</summary>
    internal ReadOnlyMemory<byte> Entries { get; }
}

/// <summary>Where the sources were committed up to, as <see cref="CheckpointReader.ReadCommittedPositionsAsync"/> found it.</summary>
public sealed class CommittedPositions
{
    internal CommittedPositions(long afterBatch, IReadOnlyDictionary<string, IReadOnlyDictionary<string, long>> positions, IReadOnlyList<string> skipped)
    {
        AfterBatch = afterBatch;
        Positions = positions;
        Skipped = skipped;
    }

    /// <summary>The committed batch whose logged plan gives the positions (-1 when every candidate was damaged).</summary>
    public long AfterBatch { get; }

    /// <summary>Source → partition → position after that batch.</summary>
    public IReadOnlyDictionary<string, IReadOnlyDictionary<string, long>> Positions { get; }

    /// <summary>Newer offsets files that were damaged or foreign and so skipped, one message each.</summary>
    public IReadOnlyList<string> Skipped { get; }
}
