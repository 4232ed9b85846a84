using PipelineDsl.Checkpointing;
using PipelineDsl.Runtime.Tests.Golden;
using PipelineDsl.Serialization;

namespace PipelineDsl.Runtime.Tests;

/// <summary>
/// Mutates real checkpoints of pipelines with every stateful operator kind (the golden scenarios, written by
/// this build) and restarts on each, in process. Mutations are raw (bit flips, truncation, deletion, garbage),
/// re-sealed with a valid checksum and identity (a body edited, cut, emptied of a key, swapped with another
/// batch's), or foreign (a file of another checkpoint of the same pipeline, another batch's file under this
/// name, either re-sealed as this checkpoint's). For every case the run must either produce exactly the
/// uninterrupted output for every batch it delivers, or fail with a CheckpointException whose message names a
/// checkpoint file; never another exception, never a hang, never a large allocation.
/// Cases: 2,000 by default (PIPELINEDSL_FUZZ_CASES for more); the seed is printed (PIPELINEDSL_TEST_SEED replays it).
/// </summary>
[Collection(EnrichAuditLog.Collection)]
public class CheckpointFuzzTests(Xunit.Abstractions.ITestOutputHelper log)
{
    private static readonly TimeSpan CaseTimeout = TimeSpan.FromSeconds(30);

    private sealed record Prepared(GoldenScenario Scenario, List<(int Batch, string Source, int Partition, string Record)> Input,
        Dictionary<long, List<string>> Expected, string Checkpoint, string Foreign);

    private static string Line((long Batch, string Sink, string Record) o) => $"{o.Sink}\t{o.Record}";

    private static async Task<Prepared> PrepareAsync(GoldenScenario template, string root)
    {
        var input = template.MakeInput().ToList();
        // The uninterrupted output, per batch.
        var reference = template.Fresh();
        var expected = new Dictionary<long, List<string>>();
        for (int b = 0; b < template.Batches; b++)
        {
            reference.Feed(b, input);
            foreach (var o in await reference.RunAsync(Path.Combine(root, "reference")))
                (expected.TryGetValue(o.Batch, out var l) ? l : expected[o.Batch] = new List<string>()).Add(Line(o));
        }

        // The checkpoint to mutate (after StoredBatches batches), and a foreign one of the same pipeline (one batch fewer, another identity).
        string checkpoint = Path.Combine(root, "pristine");
        string foreign = Path.Combine(root, "foreign");
        var a = template.Fresh();
        var f = template.Fresh();
        for (int b = 0; b < template.StoredBatches; b++)
        {
            a.Feed(b, input);
            await a.RunAsync(checkpoint);
            f.Feed(b, input);
            if (b != template.StoredBatches - 2) await f.RunAsync(foreign); // batches merge: the foreign checkpoint's batch numbers mean other ranges
        }

        return new Prepared(template, input, expected, checkpoint, foreign);
    }

    [Fact]
    public async Task Restarting_on_mutated_checkpoints_gives_exact_output_or_a_named_checkpoint_error()
    {
        int cases = Environment.GetEnvironmentVariable("PIPELINEDSL_FUZZ_CASES") is { } n ? int.Parse(n, System.Globalization.CultureInfo.InvariantCulture) : 2000;
        var random = TestRandom.Create(20261201, log, "the checkpoint mutations");
        using var dir = new TempDir();
        var prepared = new List<Prepared>();
        foreach (var scenario in GoldenScenario.All) prepared.Add(await PrepareAsync(scenario, dir.Sub(scenario.Name)));

        var outcomes = new Dictionary<string, int>(StringComparer.Ordinal);
        var failures = new List<string>();
        for (int c = 0; c < cases && failures.Count < 5; c++)
        {
            var p = prepared[c % prepared.Count];
            string work = dir.Sub($"case-{c}");
            CheckpointTestFiles.CopyDirectory(p.Checkpoint, work);
            string mutation = Mutate(work, p, random);
            string outcome;
            try
            {
                outcome = await RunCaseAsync(p, work);
            }
            catch (InvalidOperationException e) when (mutation.EndsWith(InStateData, StringComparison.Ordinal) && e.Message.StartsWith("wrong output", StringComparison.Ordinal))
            {
                outcome = "wrong output from state data edited under a valid checksum (undetectable)";
            }
            catch (Exception e)
            {
                failures.Add($"case {c} ({p.Scenario.Name}; {mutation}): {e.GetType().Name}: {e.Message}");
                outcome = "FAILED";
            }

            outcomes[outcome] = outcomes.GetValueOrDefault(outcome) + 1;
            Directory.Delete(work, recursive: true);
        }

        foreach (var (outcome, count) in outcomes.OrderBy(o => o.Key, StringComparer.Ordinal)) log.WriteLine($"{count,6} {outcome}");
        Assert.True(failures.Count == 0, string.Join("\n", failures));
        Assert.True(outcomes.GetValueOrDefault("exact output") > cases / 10, "too few cases restored: the mutations no longer exercise recovery");
        Assert.True(outcomes.Keys.Count(k => k.StartsWith("refused", StringComparison.Ordinal)) > 0, "no case was refused: the mutations no longer reach the checks");
    }

    /// <summary>Restores <paramref name="work"/> and runs the remaining batches; returns the outcome's kind, or throws on a wrong one.</summary>
    private static async Task<string> RunCaseAsync(Prepared p, string work)
    {
        var scenario = p.Scenario.Fresh();
        for (int b = 0; b < p.Scenario.StoredBatches; b++) scenario.Feed(b, p.Input);
        var delivered = new Dictionary<long, List<string>>();
        long allocated = GC.GetTotalAllocatedBytes();
        try
        {
            for (int b = p.Scenario.StoredBatches; b < p.Scenario.Batches; b++)
            {
                scenario.Feed(b, p.Input);
                var run = scenario.RunAsync(work);
                if (await Task.WhenAny(run, Task.Delay(CaseTimeout)) != run) throw new TimeoutException($"the run did not finish within {CaseTimeout}");
                foreach (var group in (await run).GroupBy(o => o.Batch)) delivered[group.Key] = group.Select(Line).ToList(); // a re-delivery replaces, as an idempotent sink
            }
        }
        catch (CheckpointException e)
        {
            if (!NamesAFile(e.Message)) throw new InvalidOperationException($"the checkpoint error names no file: {e.Message}");
            return "refused: " + e.GetType().Name;
        }
        finally
        {
            long used = GC.GetTotalAllocatedBytes() - allocated;
            if (used > 1L << 30) throw new InvalidOperationException($"the case allocated {used >> 20} MiB");
        }

        foreach (var (batch, lines) in delivered)
        {
            var expected = p.Expected.GetValueOrDefault(batch) ?? new List<string>();
            if (!expected.SequenceEqual(lines))
                throw new InvalidOperationException($"wrong output for batch {batch}: expected [{string.Join(" | ", expected)}] but got [{string.Join(" | ", lines)}]");
        }

        for (long b = p.Scenario.StoredBatches; b < p.Scenario.Batches; b++)
        {
            if (p.Expected.TryGetValue(b, out var expected) && expected.Count > 0 && !delivered.ContainsKey(b))
                throw new InvalidOperationException($"batch {b}'s output was never delivered");
        }

        return "exact output";
    }

    private static bool NamesAFile(string message) =>
        message.Contains("metadata", StringComparison.Ordinal) || message.Contains("offsets", StringComparison.Ordinal)
        || message.Contains("commits", StringComparison.Ordinal) || message.Contains("state/", StringComparison.Ordinal)
        || message.Contains("checkpoint '", StringComparison.Ordinal);

    // ---- mutations -------------------------------------------------------------------------------------

    private static string Mutate(string work, Prepared p, Random random)
    {
        var files = Directory.GetFiles(work, "*", SearchOption.AllDirectories)
            .Where(f => Path.GetFileName(f) is not ("lock" or "lock.owner") && !Path.GetFileName(f).StartsWith('.'))
            .Order(StringComparer.Ordinal).ToList();
        string file = files[random.Next(files.Count)];
        string name = Path.GetRelativePath(work, file).Replace('\\', '/');
        string kind = KindOf(name);
        byte[] bytes = File.ReadAllBytes(file);
        int mutation = random.Next(14);
        // A state backend's shared files (RocksDB's tables) have no envelope to re-seal: their listing in the
        // snapshot holds their length and checksum. They get the raw mutations.
        if (kind == "shared" && mutation is 4 or 5 or 6 or 7 or 9 or 11) mutation = new[] { 0, 1, 2, 3, 12, 13 }[random.Next(6)];
        switch (mutation)
        {
            case 0:
                bytes[random.Next(bytes.Length)] ^= (byte)(1 << random.Next(8));
                File.WriteAllBytes(file, bytes);
                return $"{name}: raw bit flip";
            case 1:
                File.WriteAllBytes(file, bytes[..random.Next(bytes.Length)]);
                return $"{name}: truncated";
            case 2:
                File.Delete(file);
                return $"{name}: deleted";
            case 3:
                File.WriteAllBytes(file, bytes.Concat(Enumerable.Range(0, random.Next(1, 40)).Select(_ => (byte)random.Next(256))).ToArray());
                return $"{name}: garbage appended";
            case 4:
            {
                bool inStateData = false;
                string description = Reseal(file, kind, body =>
                {
                    int at = random.Next(body.Length);
                    inStateData = IsInStateData(body, at);
                    body[at] ^= (byte)(1 << random.Next(8));
                    return body;
                }, $"{name}: body bit flip, re-sealed");
                return inStateData ? description + " " + InStateData : description;
            }
            case 5:
                return Reseal(file, kind, body => body[..random.Next(body.Length)], $"{name}: body cut, re-sealed");
            case 6:
                return Reseal(file, kind, body => DropTopLevelKey(body, random), $"{name}: a top-level entry removed, re-sealed");
            case 7:
                return Reseal(file, kind, body => ReplaceTopLevelValue(body, random), $"{name}: a top-level value replaced, re-sealed");
            case 8:
            {
                // Another batch's file of the same kind under this name, as is (intact, this checkpoint's).
                var others = files.Where(f => f != file && KindOf(Path.GetRelativePath(work, f).Replace('\\', '/')) == kind).ToList();
                if (others.Count == 0 || kind == "metadata") goto case 0;
                string other = others[random.Next(others.Count)];
                File.Copy(other, file, overwrite: true);
                return $"{name}: replaced by {Path.GetFileName(other)} of another batch";
            }
            case 9:
            {
                // The same, re-sealed with this file's batch number.
                var others = files.Where(f => f != file && KindOf(Path.GetRelativePath(work, f).Replace('\\', '/')) == kind).ToList();
                if (others.Count == 0 || kind == "metadata") goto case 4;
                byte[] body = CheckpointFile.Open(File.ReadAllBytes(others[random.Next(others.Count)]), kind, "other").Body.ToArray();
                return Reseal(file, kind, _ => body, $"{name}: another batch's body, re-sealed as this batch");
            }
            case 10:
            case 11:
            {
                // A file of another checkpoint of the same pipeline under this name; re-sealed as this checkpoint's in case 11.
                string foreign = Path.Combine(p.Foreign, name);
                if (!File.Exists(foreign))
                {
                    var candidates = Directory.GetFiles(Path.GetDirectoryName(foreign)!).Where(f => !Path.GetFileName(f).StartsWith('.')).ToList();
                    if (candidates.Count == 0) goto case 1;
                    foreign = candidates[random.Next(candidates.Count)];
                }

                if (mutation == 10)
                {
                    File.Copy(foreign, file, overwrite: true);
                    return $"{name}: replaced by another checkpoint's {Path.GetFileName(foreign)}";
                }

                byte[] body = CheckpointFile.Open(File.ReadAllBytes(foreign), kind, "foreign").Body.ToArray();
                return Reseal(file, kind, _ => body, $"{name}: another checkpoint's body, re-sealed as this checkpoint's");
            }
            case 12:
                File.WriteAllBytes(file, Array.Empty<byte>());
                return $"{name}: emptied";
            default:
            {
                // A random region overwritten with random bytes.
                int at = random.Next(bytes.Length), length = Math.Min(bytes.Length - at, random.Next(1, 64));
                for (int i = 0; i < length; i++) bytes[at + i] = (byte)random.Next(256);
                File.WriteAllBytes(file, bytes);
                return $"{name}: {length} bytes overwritten at {at}";
            }
        }
    }

    /// <summary>
    /// Marks a re-sealed bit flip inside the keys and values of operator state. Nothing can tell such a file from one
    /// the runtime wrote: its checksum is valid, its structure and identity are intact, and any key or value is a
    /// possible state. Wrong output is the expected outcome there, and the case counts as such; a flip anywhere
    /// else in a body (identity, positions, manifest, structure) must still be refused or harmless.
    /// </summary>
    private const string InStateData = "(in state data)";

    /// <summary>Whether <paramref name="at"/> lies in the state entries of a snapshot ("operators") or of a commit's delta ("state").</summary>
    private static bool IsInStateData(byte[] body, int at)
    {
        var r = new MessagePackReader(body);
        if (r.NextType != MessagePackType.Map) return false;
        int count = r.ReadMapHeader();
        for (int i = 0; i < count; i++)
        {
            string? key = r.ReadString();
            int start = r.Position;
            r.Skip();
            if (key is "operators" or "state" && at >= start && at < r.Position) return true;
        }

        return false;
    }

    private static string KindOf(string name) => name == "metadata" ? "metadata" : name.Split('/')[0] switch
    {
        "offsets" => "offsets",
        "commits" => "commit",
        "state" => "snapshot",
        "shared" => "shared",
        _ => "unknown",
    };

    private static string Reseal(string file, string kind, Func<byte[], byte[]> edit, string description)
    {
        CheckpointTestFiles.Reseal(file, kind, edit);
        return description;
    }

    private static byte[] DropTopLevelKey(byte[] body, Random random)
    {
        var entries = CheckpointTestFiles.MapEntries(body);
        if (entries.Count == 0) return body;
        entries.RemoveAt(random.Next(entries.Count));
        return CheckpointTestFiles.Map(entries);
    }

    private static byte[] ReplaceTopLevelValue(byte[] body, Random random)
    {
        var entries = CheckpointTestFiles.MapEntries(body);
        if (entries.Count == 0) return body;
        int i = random.Next(entries.Count);
        var w = new MessagePackWriter(16);
        switch (random.Next(5))
        {
            case 0: w.WriteNil(); break;
            case 1: w.Write((long)random.Next(-5, 1_000_000)); break;
            case 2: w.Write("x"); break;
            case 3: w.WriteMapHeader(0); break;
            default: w.WriteArrayHeader(0); break;
        }

        entries[i] = (entries[i].Key, w.ToArray());
        return CheckpointTestFiles.Map(entries);
    }
}
