using System.CommandLine;
using System.Globalization;
using System.Reflection;
using System.Reflection.Metadata;
using System.Text;
using System.Text.Json;
using PipelineDsl.Checkpointing;
using PipelineDsl.Execution;
using PipelineDsl.Graph;
using PipelineDsl.Serialization;
using PipelineDsl.State;

namespace PipelineDsl.Cli;

/// <summary>
/// <c>pipelinedsl</c>: inspect, diff and dump checkpoints, and write the lock file. Exit codes: 0 success,
/// 1 error, 2 bad usage, 3 the checkpoint is incompatible with the given build (<c>diff</c>), or the lock
/// file is out of date (<c>lock --check</c>).
/// </summary>
public static class CliApp
{
    public const int Ok = 0, Failed = 1, Usage = 2, Incompatible = 3;

    /// <summary>Runs the tool: <paramref name="output"/> gets results and help, <paramref name="error"/> the one-line errors.</summary>
    public static Task<int> RunAsync(string[] args, TextWriter output, TextWriter error)
    {
        var root = new RootCommand("Inspect, diff and dump PipelineDsl checkpoints; write the pipeline lock file. Exit codes: 0 ok, 1 error, 2 bad usage, 3 incompatible or stale.");

        var inspectDir = new Argument<string>("checkpoint-dir") { Description = "The checkpoint directory of a pipeline" };
        var inspect = new Command("inspect", "Batches, committed positions, state per operator, the stored manifest.") { inspectDir };
        inspect.SetAction((r, _) => Guarded(() => InspectAsync(r.GetValue(inspectDir)!, output), error));

        var diffDir = new Argument<string>("checkpoint-dir") { Description = "The checkpoint directory of a pipeline" };
        var diffBuild = new Argument<string?>("build") { Description = "The new build: its assembly (.dll) or a lock file; omitted, the checkpoint is compared with itself", Arity = ArgumentArity.ZeroOrOne };
        var diff = new Command("diff", "Can this build restore the checkpoint? Kept, migrated, retired, new or INCOMPATIBLE per operator (exit 3 if not restorable).") { diffDir, diffBuild };
        diff.SetAction((r, _) => Guarded(() => DiffAsync(r.GetValue(diffDir)!, r.GetValue(diffBuild), output), error));

        var dumpDir = new Argument<string>("checkpoint-dir") { Description = "The checkpoint directory of a pipeline" };
        var dumpOperator = new Argument<string>("operator") { Description = "The id of a stateful operator" };
        var limit = new Option<int>("--limit") { Description = "At most this many entries", DefaultValueFactory = _ => int.MaxValue }.NotNegative();
        var dump = new Command("dump-state", "An operator's state as JSON lines (with field names where the state is a contract).") { dumpDir, dumpOperator, limit };
        dump.SetAction((r, _) => Guarded(() => DumpStateAsync(r.GetValue(dumpDir)!, r.GetValue(dumpOperator)!, r.GetValue(limit), output), error));

        var lockAssembly = new Argument<string>("assembly") { Description = "The built assembly (.dll) holding the pipelines" };
        var lockFile = new Option<string>("--lock-file") { Description = "The lock file to write", DefaultValueFactory = _ => "pipelines.lock.json" };
        var check = new Option<bool>("--check") { Description = "Only check that the lock file is up to date (exit 3 if not)" };
        var lockCommand = new Command("lock", "Write (or check) pipelines.lock.json from a built assembly, after that build is deployed.") { lockAssembly, lockFile, check };
        lockCommand.SetAction((r, _) => Guarded(() => Task.FromResult(Lock(r.GetValue(lockAssembly)!, r.GetValue(lockFile)!, r.GetValue(check), output, error)), error));

        root.Subcommands.Add(inspect);
        root.Subcommands.Add(diff);
        root.Subcommands.Add(dump);
        root.Subcommands.Add(lockCommand);
        return CommandLineProgram.RunAsync(root, args, output, error);
    }

    /// <summary>
    /// Every failure is one line and exit code 1: a damaged or foreign file, a checkpoint this build cannot read, a
    /// bad assembly. Never a stack trace: the message names the file and what to do.
    /// </summary>
    private static async Task<int> Guarded(Func<Task<int>> run, TextWriter error)
    {
        try
        {
            return await run();
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            string message = e is CliException or PipelineDslException or IOException or UnauthorizedAccessException or FormatException or BadImageFormatException or JsonException
                ? e.Message
                : $"{e.Message} ({e.GetType().Name})";
            error.WriteLine("error: " + string.Join("; ", message.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)));
            return Failed;
        }
    }

    // ---- reading a checkpoint ---------------------------------------------------------------------

    /// <summary>A checkpoint as the commands see it: read through the runtime's own <see cref="CheckpointReader"/>, so every file is judged by the rules a restore uses.</summary>
    private sealed record Checkpoint(CheckpointReader Reader, CheckpointSnapshot? Newest)
    {
        public string Location => Reader.Location;

        public string PipelineId => Reader.PipelineId;
    }

    private static async Task<Checkpoint> OpenAsync(string directory)
    {
        if (!Directory.Exists(directory)) throw new CliException($"'{directory}' does not exist: give the checkpoint directory of a pipeline.");
        var reader = await CheckpointReader.OpenDirectoryAsync(directory);
        return new Checkpoint(reader, await reader.ReadNewestSnapshotAsync());
    }

    // ---- inspect ------------------------------------------------------------------------------------

    private static async Task<int> InspectAsync(string directory, TextWriter o)
    {
        var c = await OpenAsync(directory);
        o.WriteLine($"checkpoint  {c.Location}");
        o.WriteLine($"pipeline    {c.PipelineId}");
        var offsets = c.Reader.OffsetBatches;
        var commits = c.Reader.CommitBatches;
        o.WriteLine($"batches     offsets {Range(offsets)}, commits {Range(commits)}, last committed {(commits.Count == 0 ? "none" : commits.Max().ToString(CultureInfo.InvariantCulture))}");
        o.WriteLine($"snapshots   {(c.Reader.SnapshotBatches.Count == 0 ? "none" : string.Join(", ", c.Reader.SnapshotBatches.Select(b => b.ToString(CultureInfo.InvariantCulture))))}{(c.Newest is null ? "" : $" (newest valid: {c.Newest.Batch}, {Size(c.Newest.SizeBytes)})")}");

        // Positions: from the newest committed offsets file that is intact, else from the snapshot.
        var positions = new List<string[]>();
        var committed = await c.Reader.ReadCommittedPositionsAsync();
        foreach (var problem in committed?.Skipped ?? Array.Empty<string>()) o.WriteLine($"damaged     {problem}");
        if (committed is { AfterBatch: >= 0 })
        {
            foreach (var (source, partitions) in committed.Positions)
                foreach (var (partition, position) in partitions) positions.Add(new[] { source, partition, position.ToString(CultureInfo.InvariantCulture) });
            o.WriteLine();
            o.WriteLine($"committed positions (after batch {committed.AfterBatch})");
        }
        else if (c.Newest is not null)
        {
            foreach (var (source, partitions) in c.Newest.Positions)
                foreach (var (partition, position) in partitions) positions.Add(new[] { source, partition, position.ToString(CultureInfo.InvariantCulture) });
            o.WriteLine();
            o.WriteLine($"positions (snapshot {c.Newest.Batch})");
        }

        if (positions.Count > 0) Table(o, new[] { "source", "partition", "position" }, positions);

        if (c.Newest is { } snapshot)
        {
            o.WriteLine();
            o.WriteLine($"state (snapshot {snapshot.Batch})");
            Table(o, new[] { "operator", "version", "keys", "bytes", "schema fingerprint" }, snapshot.Operators.OrderBy(p => p.Key, StringComparer.Ordinal).Select(p => new[]
            {
                p.Key, p.Value.Version.ToString(CultureInfo.InvariantCulture), p.Value.EntryCount.ToString("N0", CultureInfo.InvariantCulture), Size(p.Value.SizeBytes), p.Value.Fingerprint,
            }).ToList());
        }

        var manifest = c.Newest?.Manifest ?? c.Reader.Manifest;
        o.WriteLine();
        o.WriteLine("manifest (as stored)");
        Table(o, new[] { "operator", "kind", "version", "inputs", "state" }, manifest.Operators.Select(op => new[]
        {
            op.Id, op.Kind, op.Version.ToString(CultureInfo.InvariantCulture), string.Join(",", op.Inputs), op.StateSchema is { } s ? $"{s.KeySchema} -> {s.ValueSchema}" : "",
        }).ToList());
        return Ok;
    }

    // ---- diff ---------------------------------------------------------------------------------------

    private static async Task<int> DiffAsync(string directory, string? build, TextWriter o)
    {
        if (build is null) throw new CliException("diff needs the new build: an assembly (.dll) or a lock file (.json).");
        var c = await OpenAsync(directory);
        var manifests = build.EndsWith(".json", StringComparison.OrdinalIgnoreCase) ? ManifestsFromLockFile(build) : ManifestsFromAssembly(build);
        var current = manifests.FirstOrDefault(m => m.PipelineId == c.PipelineId)
            ?? throw new CliException($"'{build}' has no pipeline '{c.PipelineId}' (it has: {string.Join(", ", manifests.Select(m => m.PipelineId))}).");
        var rows = (await CheckpointDiff.CompareAsync(c.Reader, c.Newest, current, default))
            .Select(r => new[] { r.OperatorId, r.Kind, r.CheckpointVersion is { } v ? "v" + v.ToString(CultureInfo.InvariantCulture) : "-", r.BuildVersion is { } b ? "v" + b.ToString(CultureInfo.InvariantCulture) : "-", r.Result })
            .ToList();
        bool incompatible = rows.Any(r => r[4].StartsWith(CheckpointDiff.IncompatiblePrefix, StringComparison.Ordinal));

        o.WriteLine($"checkpoint {c.Location} (pipeline '{c.PipelineId}', {(c.Newest is null ? "no snapshot yet" : $"snapshot {c.Newest.Batch}")}) against {build}");
        Table(o, new[] { "operator", "kind", "checkpoint", "build", "result" }, rows);
        o.WriteLine(incompatible ? "incompatible: this build cannot restore the checkpoint (see the rows above for each fix)" : "compatible: this build can restore the checkpoint");
        return incompatible ? Incompatible : Ok;
    }

    // ---- dump-state ---------------------------------------------------------------------------------

    private static async Task<int> DumpStateAsync(string directory, string operatorId, int limit, TextWriter o)
    {
        var c = await OpenAsync(directory);
        var snapshot = c.Newest ?? throw new CliException("The checkpoint has no valid snapshot yet: nothing to dump.");
        if (!snapshot.Operators.TryGetValue(operatorId, out var op))
            throw new CliException($"Snapshot {snapshot.Batch} holds no state for '{operatorId}'; it holds: {string.Join(", ", snapshot.Operators.Keys.Order(StringComparer.Ordinal))}.");
        var entry = (snapshot.Manifest ?? c.Reader.Manifest).Find(operatorId);
        var names = entry?.StateSchema?.Fields.ToDictionary(f => (long)f.Key, f => f.Name) ?? new Dictionary<long, string>();
        // The layouts belong to the state stores; StateDump asks the one of this operator's kind. A state backend's
        // database (RocksDB) is read from its files.
        if (op.Format == SharedStateFileSet.Format)
            PipelineDsl.RocksDb.RocksDbStateDump.Dump(entry?.Kind ?? "", op.Entries, new SharedStateFiles(c.Reader.Log.Store), operatorId, names, new JsonLines(o, limit));
        else
            StateDump.WriteJsonLines(entry?.Kind ?? "", op.Entries.Span, names, limit, o);
        return Ok;
    }

    // ---- lock ---------------------------------------------------------------------------------------

    private static int Lock(string assembly, string lockFile, bool check, TextWriter o, TextWriter error)
    {
        var manifests = ManifestsFromAssembly(assembly);
        if (manifests.Count == 0) throw new CliException($"'{assembly}' declares no pipeline (no [Pipeline] class compiled with the PipelineDsl generator).");
        var entries = new SortedDictionary<string, string>(StringComparer.Ordinal);
        if (File.Exists(lockFile))
        {
            // Keep the entries of pipelines that live in other assemblies.
            foreach (var m in ManifestsFromLockFile(lockFile)) entries[m.PipelineId] = m.Json;
        }

        foreach (var m in manifests) entries[m.PipelineId] = m.Json;
        string text = LockFileText(entries.Values);
        if (check)
        {
            string? existing = File.Exists(lockFile) ? File.ReadAllText(lockFile) : null;
            if (existing == text)
            {
                o.WriteLine($"{lockFile} is up to date");
                return Ok;
            }

            error.WriteLine($"{lockFile} is {(existing is null ? "missing" : "out of date")}: run 'pipelinedsl lock {assembly}' when this build is what runs against your checkpoints");
            return Incompatible;
        }

        File.WriteAllText(lockFile, text);
        o.WriteLine($"wrote {lockFile}: {string.Join(", ", manifests.Select(m => $"'{m.PipelineId}'"))}");
        return Ok;
    }

    /// <summary>The lock file: a comment and every pipeline's manifest, ordered by pipeline id, indented.</summary>
    public static string LockFileText(IEnumerable<string> manifests)
    {
        var sb = new StringBuilder();
        sb.Append("{\n  \"formatVersion\": 1,\n");
        sb.Append("  \"comment\": \"Written by 'pipelinedsl lock'. Commit it: the build compares every pipeline with it and reports each change that would strand checkpoints written by the locked build. Run 'pipelinedsl lock' again when you deploy.\",\n");
        sb.Append("  \"pipelines\": [\n");
        sb.Append(string.Join(",\n", manifests.Select(m => string.Join("\n", m.TrimEnd().Split('\n').Select(line => "    " + line)))));
        sb.Append("\n  ]\n}\n");
        return sb.ToString();
    }

    private static List<PipelineManifest> ManifestsFromLockFile(string path)
    {
        if (!File.Exists(path)) throw new CliException($"The lock file '{path}' does not exist.");
        using var doc = JsonDocument.Parse(File.ReadAllText(path));
        if (!doc.RootElement.TryGetProperty("pipelines", out var pipelines)) throw new CliException($"'{path}' is not a lock file: it has no \"pipelines\".");
        return pipelines.EnumerateArray().Select(p => PipelineManifest.Parse(Reindent(p.GetRawText()))).ToList();
    }

    // A manifest inside the lock file is indented; the canonical text starts at column 0.
    private static string Reindent(string raw)
    {
        var lines = raw.Split('\n');
        return string.Join("\n", lines.Select((l, i) => i == 0 ? l : l.StartsWith("    ", StringComparison.Ordinal) ? l[4..] : l)) + "\n";
    }

    /// <summary>
    /// Reads each pipeline's manifest constant (a generated class's <c>ManifestJson</c> literal) from a built
    /// assembly's metadata: the assembly is not loaded, so none of its code runs and none of its dependencies
    /// has to be found.
    /// </summary>
    private static List<PipelineManifest> ManifestsFromAssembly(string path)
    {
        if (!File.Exists(path)) throw new CliException($"The assembly '{path}' does not exist: build the project first and give the path of its .dll.");
        using var stream = File.OpenRead(path);
        using var pe = new System.Reflection.PortableExecutable.PEReader(stream);
        MetadataReader metadata;
        try
        {
            if (!pe.HasMetadata) throw new BadImageFormatException("it has no .NET metadata");
            metadata = pe.GetMetadataReader();
        }
        catch (BadImageFormatException e)
        {
            throw new CliException($"'{path}' is not a .NET assembly ({e.Message.TrimEnd('.')}): give the .dll that the build of your pipelines produced.");
        }

        var manifests = new List<PipelineManifest>();
        foreach (var typeHandle in metadata.TypeDefinitions)
        {
            foreach (var fieldHandle in metadata.GetTypeDefinition(typeHandle).GetFields())
            {
                var field = metadata.GetFieldDefinition(fieldHandle);
                const FieldAttributes literal = FieldAttributes.Literal | FieldAttributes.Static | FieldAttributes.Public;
                if ((field.Attributes & literal) != literal || !metadata.StringComparer.Equals(field.Name, "ManifestJson")) continue;
                var constant = field.GetDefaultValue();
                if (constant.IsNil) continue;
                var value = metadata.GetConstant(constant);
                if (value.TypeCode != System.Reflection.Metadata.ConstantTypeCode.String) continue;
                var blob = metadata.GetBlobReader(value.Value);
                manifests.Add(PipelineManifest.Parse(blob.ReadUTF16(blob.Length)));
            }
        }

        return manifests.OrderBy(m => m.PipelineId, StringComparer.Ordinal).ToList();
    }

    // ---- output helpers ----------------------------------------------------------------------------

    private static string Range(IReadOnlyList<long> batches) => batches.Count == 0 ? "none" : $"{batches.Min()}..{batches.Max()}";

    private static string Size(long bytes) => bytes switch
    {
        < 1024 => $"{bytes} B",
        < 1024 * 1024 => $"{bytes / 1024.0:F1} KiB",
        _ => $"{bytes / 1024.0 / 1024.0:F1} MiB",
    };

    private static void Table(TextWriter o, string[] headers, List<string[]> rows)
    {
        var widths = headers.Select((h, i) => Math.Max(h.Length, rows.Count == 0 ? 0 : rows.Max(r => r[i].Length))).ToArray();
        string Line(string[] cells) => "  " + string.Join("  ", cells.Select((c, i) => i == cells.Length - 1 ? c : c.PadRight(widths[i]))).TrimEnd();
        o.WriteLine(Line(headers));
        o.WriteLine(Line(widths.Select(w => new string('-', w)).ToArray()));
        foreach (var row in rows) o.WriteLine(Line(row));
    }
}

/// <summary>An error the user can fix; printed without a stack trace.</summary>
public sealed class CliException(string message) : Exception(message);
