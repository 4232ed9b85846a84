using PipelineDsl.Sources;

namespace PipelineDsl.Runtime.Tests;

/// <summary>
/// The write-ahead log's format, as a file written once by <c>GoldenWal/write_v1.py</c> (independently of this code) and
/// never regenerated: today's build must read every request of it, recognize its keys, and append after it.
/// </summary>
public class GoldenWalTests
{
    private sealed class Lines : ISourceOutput<string>
    {
        public List<(long Position, string Line)> Read { get; } = new();

        public void Emit(long position, string record) => Read.Add((position, record));

        public void Reject(long position, string raw, Exception error) => throw error;
    }

    [Fact]
    public async Task A_version_1_log_is_read_whole_with_its_keys()
    {
        using var dir = new TempDir();
        string wal = dir.Sub("wal");
        Directory.CreateDirectory(wal);
        foreach (string file in Directory.GetFiles(Path.Combine(AppContext.BaseDirectory, "GoldenWal", "v1"))) File.Copy(file, Path.Combine(wal, Path.GetFileName(file)));

        using var receiver = new HttpReceiverSource<string>(wal, line => line);
        Assert.Equal(4, await receiver.GetEndPositionAsync("0", default));
        var lines = new Lines();
        await receiver.ReadAsync("0", 0, 4, lines, default);
        Assert.Equal(new[] { (0L, "u1,1"), (0L, "u2,2"), (1L, "u3,3"), (2L, "u1,4"), (2L, "u4,5"), (2L, "u2,6"), (3L, "u5,7") }, lines.Read);

        Assert.Equal(new IngestResult(IngestOutcome.Duplicate, 0), await receiver.IngestAsync(new[] { "u1,1", "u2,2" }, "order-1"));
        Assert.Equal(new IngestResult(IngestOutcome.Duplicate, 2), await receiver.IngestAsync(new[] { "x" }, "order-3"));
        Assert.Equal(new IngestResult(IngestOutcome.Duplicate, 3), await receiver.IngestAsync(new[] { "x" }, "zürich-ß"));
        Assert.Equal(new IngestResult(IngestOutcome.Accepted, 4), await receiver.IngestAsync(new[] { "u6,8" }, "order-5"));
    }
}
