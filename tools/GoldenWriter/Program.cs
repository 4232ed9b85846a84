using PipelineDsl.Runtime.Tests.Golden;

// Writes golden checkpoints for every scenario into DIR/<scenario>/: input.txt, expected.txt, checkpoint/.
//   dotnet run --project tools/GoldenWriter -- tests/PipelineDsl.Runtime.Tests/Golden/v3
//   dotnet run --project tools/GoldenWriter -- --rocksdb tests/PipelineDsl.Runtime.Tests/Golden/v3-rocksdb
// Run once per checkpoint format, on the build that introduces it; the files are then kept forever.
// --rocksdb writes keyed state with the RocksDB backend (state format 100 and shared files); the folder's name must
// end in -rocksdb, which is how GoldenCheckpointTests knows to restore it on RocksDB.
bool rocksDb = args.Length == 2 && args[0] == "--rocksdb";
if (args.Length != 1 && !rocksDb)
{
    Console.Error.WriteLine("usage: GoldenWriter [--rocksdb] OUTPUT-DIRECTORY");
    return 2;
}

string root = Path.GetFullPath(args[^1]);
if (rocksDb != root.TrimEnd(Path.DirectorySeparatorChar).EndsWith("-rocksdb", StringComparison.Ordinal))
{
    Console.Error.WriteLine($"error: '{root}': a folder written with --rocksdb, and only such a folder, has a name ending in -rocksdb.");
    return 2;
}

string rocksDirectory = Path.Combine(Path.GetTempPath(), "golden-rocksdb-" + Guid.NewGuid().ToString("N"));
PipelineDsl.StateBackend? backend = rocksDb ? new PipelineDsl.RocksDbStateBackend(rocksDirectory) : null;
if (Directory.Exists(root) && Directory.EnumerateFileSystemEntries(root).Any())
{
    Console.Error.WriteLine($"error: '{root}' is not empty: golden files are never regenerated. Write a new format version into a new directory.");
    return 1;
}

foreach (var scenario in GoldenScenario.All)
{
    string dir = Path.Combine(root, scenario.Name);
    Directory.CreateDirectory(dir);
    var input = scenario.MakeInput().ToList();
    File.WriteAllLines(Path.Combine(dir, "input.txt"), input.Select(i => $"{i.Batch}\t{i.Source}\t{i.Partition}\t{i.Record}"));

    // The uninterrupted run's output, batch by batch.
    string reference = Path.Combine(Path.GetTempPath(), "golden-reference-" + Guid.NewGuid().ToString("N"));
    var run = scenario.Fresh(backend);
    var expected = new List<string>();
    for (int b = 0; b < scenario.Batches; b++) expected.AddRange(await run.RunBatchAsync(reference, b, input));
    File.WriteAllLines(Path.Combine(dir, "expected.txt"), expected);
    Directory.Delete(reference, recursive: true);

    // The checkpoint after the first StoredBatches batches.
    string checkpoint = Path.Combine(dir, "checkpoint");
    var stored = scenario.Fresh(backend);
    for (int b = 0; b < scenario.StoredBatches; b++) await stored.RunBatchAsync(checkpoint, b, input);
    foreach (var file in Directory.EnumerateFiles(checkpoint, "*", SearchOption.AllDirectories))
    {
        string name = Path.GetFileName(file);
        if (name is "lock" or "lock.owner" || name.StartsWith('.')) File.Delete(file); // run-time artefacts, not checkpoint data
    }

    Console.WriteLine($"{scenario.Name}: {input.Count} input records, {expected.Count} output records, checkpoint of {scenario.StoredBatches} batches");
}

if (Directory.Exists(rocksDirectory)) Directory.Delete(rocksDirectory, recursive: true);
return 0;
