using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Text;
using System.Threading;
using System.Threading.Tasks;
using PipelineDsl.Checkpointing;
using PipelineDsl.Graph;

namespace PipelineDsl.Testing;

/// <summary>One operator in an <see cref="UpgradeCheck"/>.</summary>
/// <param name="Operator">The operator's id.</param>
/// <param name="Kind">Its kind.</param>
/// <param name="CheckpointVersion">Its version in the checkpoint (null: not there).</param>
/// <param name="BuildVersion">Its version in this build (null: not there).</param>
/// <param name="Result">kept, migrated from version N, discarded, retired, new, removed, or INCOMPATIBLE with the reason and the fix.</param>
public sealed record UpgradeCheckRow(string Operator, string Kind, long? CheckpointVersion, long? BuildVersion, string Result);

/// <summary>Whether this build can restore a checkpoint, operator by operator: <c>pipelinedsl diff</c> in a test.</summary>
public sealed class UpgradeCheck
{
    internal UpgradeCheck(string checkpoint, IReadOnlyList<UpgradeCheckRow> rows)
    {
        Checkpoint = checkpoint;
        Rows = rows;
    }

    /// <summary>The checkpoint checked.</summary>
    public string Checkpoint { get; }

    /// <summary>Each operator of the checkpoint or the build.</summary>
    public IReadOnlyList<UpgradeCheckRow> Rows { get; }

    /// <summary>True when no operator is incompatible.</summary>
    public bool CanRestore => Rows.All(r => !r.Result.StartsWith("INCOMPATIBLE", StringComparison.Ordinal));

    /// <summary>The table, as <c>pipelinedsl diff</c> prints it: put it in an assertion's message.</summary>
    public override string ToString()
    {
        var text = new StringBuilder($"checkpoint {Checkpoint} against this build: {(CanRestore ? "compatible" : "INCOMPATIBLE")}\n");
        foreach (var r in Rows)
            text.Append($"  {r.Operator} ({r.Kind}): {(r.CheckpointVersion is { } c ? "v" + c : "-")} -> {(r.BuildVersion is { } b ? "v" + b : "-")}: {r.Result}\n");
        return text.ToString();
    }
}

/// <summary>
/// Your own golden checkpoints: save a checkpoint your pipeline wrote in a test into your test project (commit it), and
/// check in every later build that it still restores (<see cref="Check(PipelineDefinition, string)"/>, then a <see cref="PipelineTestDriver"/> over
/// <see cref="Load"/> to compare the restored state). A checkpoint format, once shipped, is read forever; a golden file,
/// once committed, is never regenerated to make a test pass.
/// </summary>
public static class GoldenCheckpoint
{
    /// <summary>
    /// Writes every file of <paramref name="checkpoint"/> into <paramref name="directory"/> (created). Refuses a directory
    /// that holds files already, so that a committed golden checkpoint is never overwritten by accident.
    /// </summary>
    public static void Save(ICheckpointStore checkpoint, string directory)
    {
        if (checkpoint is null) throw new ArgumentNullException(nameof(checkpoint));
        if (Directory.Exists(directory) && Directory.EnumerateFileSystemEntries(directory).Any())
            throw new IOException($"'{Path.GetFullPath(directory)}' holds files already: a golden checkpoint is written once and never regenerated. Delete it yourself if you mean to replace it.");
        foreach (var (name, bytes) in Files(checkpoint))
        {
            string path = Path.Combine(directory, name.Replace('/', Path.DirectorySeparatorChar));
            Directory.CreateDirectory(Path.GetDirectoryName(path)!);
            File.WriteAllBytes(path, bytes);
        }
    }

    /// <summary>A copy in memory of the checkpoint in <paramref name="directory"/>: a test restoring it never changes the golden files.</summary>
    public static ICheckpointStore Load(string directory)
    {
        if (!Directory.Exists(directory)) throw new DirectoryNotFoundException($"'{Path.GetFullPath(directory)}' does not exist: save a golden checkpoint there first (GoldenCheckpoint.Save), and copy it to the test's output directory.");
        var store = new InMemoryCheckpointStore();
        foreach (string file in Directory.EnumerateFiles(directory, "*", SearchOption.AllDirectories).OrderBy(f => f, StringComparer.Ordinal))
        {
            string name = Path.GetRelativePath(directory, file).Replace(Path.DirectorySeparatorChar, '/');
            if (name.StartsWith('.') || name.Contains("/.", StringComparison.Ordinal)) continue; // temporary files of an interrupted write
            store.WriteAsync(name, File.ReadAllBytes(file), durable: false, CancellationToken.None).GetAwaiter().GetResult();
        }

        return store;
    }

    /// <summary>Whether <paramref name="definition"/> (this build) can restore the checkpoint in <paramref name="directory"/>: the rules of a restore, operator by operator.</summary>
    public static UpgradeCheck Check(PipelineDefinition definition, string directory) => CheckAsync(definition, Load(directory), Path.GetFullPath(directory)).GetAwaiter().GetResult();

    /// <summary>Whether <paramref name="definition"/> can restore <paramref name="checkpoint"/>.</summary>
    public static UpgradeCheck Check(PipelineDefinition definition, ICheckpointStore checkpoint) => CheckAsync(definition, checkpoint, checkpoint.Location).GetAwaiter().GetResult();

    private static async Task<UpgradeCheck> CheckAsync(PipelineDefinition definition, ICheckpointStore checkpoint, string location)
    {
        if (definition is null) throw new ArgumentNullException(nameof(definition));
        var reader = await CheckpointReader.OpenAsync(checkpoint).ConfigureAwait(false);
        if (reader.PipelineId != definition.PipelineId)
            throw new ArgumentException($"The checkpoint at {location} belongs to pipeline '{reader.PipelineId}', not '{definition.PipelineId}'.", nameof(definition));
        var rows = await CheckpointDiff.CompareAsync(reader, await reader.ReadNewestSnapshotAsync().ConfigureAwait(false), definition.Manifest, CancellationToken.None).ConfigureAwait(false);
        return new UpgradeCheck(location, rows.Select(r => new UpgradeCheckRow(r.OperatorId, r.Kind, r.CheckpointVersion, r.BuildVersion, r.Result)).ToList());
    }

    /// <summary>Every file of a store: metadata, offsets, commits, snapshots and dead letters.</summary>
    internal static IEnumerable<(string Name, byte[] Bytes)> Files(ICheckpointStore store)
    {
        foreach (string folder in new[] { "", "offsets", "commits", "state", "dead-letter" })
        {
            var names = folder.Length == 0 ? new[] { "metadata" } : store.ListAsync(folder, CancellationToken.None).GetAwaiter().GetResult().ToArray();
            foreach (string name in names)
                if (store.ReadAsync(name, CancellationToken.None).GetAwaiter().GetResult() is { } bytes) yield return (name, bytes);
        }
    }
}
