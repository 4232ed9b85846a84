using System.Text;
using PipelineDsl.Sources;
using Xunit.Abstractions;

namespace PipelineDsl.Runtime.Tests;

/// <summary>The receivers' write-ahead log: durable in order, group-committed, a torn tail cut, damage refused, segments deleted only below what recovery may read.</summary>
public class WriteAheadLogTests(ITestOutputHelper log)
{
    private static byte[] Record(long i) => Encoding.UTF8.GetBytes("record " + i + new string('x', (int)(i % 50)));

    private static List<string> ReadAll(WriteAheadLog wal)
    {
        var read = new List<string>();
        wal.Read(wal.Start, wal.DurableEnd, (position, bytes) => read.Add(position + ":" + Encoding.UTF8.GetString(bytes.Span)));
        return read;
    }

    [Fact]
    public async Task Concurrent_appends_are_numbered_in_order_durable_when_acknowledged_and_share_fsyncs()
    {
        using var dir = new TempDir();
        using (var wal = new LocalWriteAheadLog(dir.Sub("wal"), segmentBytes: 64 * 1024))
        {
            var appends = Enumerable.Range(0, 5_000).Select(i => Task.Run(() => wal.AppendAsync(Record(i)))).ToArray();
            var positions = await Task.WhenAll(appends);
            Assert.Equal(Enumerable.Range(0, 5_000).Select(i => (long)i), positions.Order());
            Assert.Equal(5_000, wal.DurableEnd);
            log.WriteLine($"5,000 concurrent appends took {wal.Syncs} fsyncs");
            Assert.True(wal.Syncs < 2_500, $"{wal.Syncs} fsyncs for 5,000 concurrent appends: appends are not grouped");
            Assert.True(Directory.GetFiles(dir.Sub("wal"), "*.wal").Length > 1, "segments roll at their size");
        }

        // Reopened: every acknowledged record, each at the position its append returned.
        using var reopened = new LocalWriteAheadLog(dir.Sub("wal"), segmentBytes: 64 * 1024);
        var all = ReadAll(reopened);
        Assert.Equal(5_000, all.Count);
        var byPosition = all.ToDictionary(l => long.Parse(l[..l.IndexOf(':')]), l => l[(l.IndexOf(':') + 1)..]);
        Assert.Equal(5_000, byPosition.Count);
        // Each payload is one of the records, none twice.
        Assert.Equal(Enumerable.Range(0, 5_000).Select(i => Encoding.UTF8.GetString(Record(i))).Order(StringComparer.Ordinal), byPosition.Values.Order(StringComparer.Ordinal));
    }

    [Fact]
    public async Task A_torn_tail_from_a_crash_is_cut_and_the_log_continues_after_the_last_whole_record()
    {
        using var dir = new TempDir();
        using (var wal = new LocalWriteAheadLog(dir.Sub("wal")))
        {
            for (int i = 0; i < 100; i++) await wal.AppendAsync(Record(i));
        }

        // A crash in the middle of a write: a frame whose header promises more bytes than were written.
        string segment = Directory.GetFiles(dir.Sub("wal"), "*.wal").Single();
        long whole = new FileInfo(segment).Length;
        using (var file = new FileStream(segment, FileMode.Append)) file.Write(new byte[] { 0, 0, 1, 0, 1, 2, 3, 4, 5, 6 });

        using var reopened = new LocalWriteAheadLog(dir.Sub("wal"));
        Assert.Equal(100, reopened.DurableEnd);
        Assert.Equal(whole, new FileInfo(segment).Length);
        Assert.Equal(100, await reopened.AppendAsync(Record(100)));
        Assert.Equal(Enumerable.Range(0, 101).Select(i => i + ":" + Encoding.UTF8.GetString(Record(i))), ReadAll(reopened));
    }

    [Fact]
    public async Task Damage_inside_a_closed_segment_is_refused_naming_the_file()
    {
        using var dir = new TempDir();
        using (var wal = new LocalWriteAheadLog(dir.Sub("wal"), segmentBytes: 1024))
        {
            for (int i = 0; i < 200; i++) await wal.AppendAsync(Record(i));
        }

        string first = Directory.GetFiles(dir.Sub("wal"), "*.wal").Order(StringComparer.Ordinal).First();
        var bytes = File.ReadAllBytes(first);
        bytes[20] ^= 0x40; // inside the first record's payload
        File.WriteAllBytes(first, bytes);

        var e = Assert.Throws<IOException>(() => new LocalWriteAheadLog(dir.Sub("wal"), segmentBytes: 1024));
        Assert.Contains(Path.GetFileName(first), e.Message);
        Assert.Contains("acknowledged records", e.Message);
    }

    [Fact]
    public async Task Segments_are_deleted_only_when_every_record_in_them_lies_below_the_position()
    {
        using var dir = new TempDir();
        using var wal = new LocalWriteAheadLog(dir.Sub("wal"), segmentBytes: 1024);
        for (int i = 0; i < 300; i++) await wal.AppendAsync(Record(i));
        var segments = Directory.GetFiles(dir.Sub("wal"), "*.wal").Select(f => long.Parse(Path.GetFileNameWithoutExtension(f))).Order().ToList();
        Assert.True(segments.Count >= 4, $"{segments.Count} segments");

        wal.DeleteBelow(segments[2] - 1); // inside the second segment: only the first goes
        Assert.Equal(segments[1], wal.Start);
        Assert.Equal(segments.Count - 1, Directory.GetFiles(dir.Sub("wal"), "*.wal").Length);

        wal.DeleteBelow(long.MaxValue); // everything committed: the segment being written stays
        Assert.Single(Directory.GetFiles(dir.Sub("wal"), "*.wal"));
        Assert.Equal(segments[^1], wal.Start);
        Assert.Throws<InvalidOperationException>(() => wal.Read(0, 1, (_, _) => { }));
        Assert.Equal(300 - segments[^1], ReadAll(wal).Count);
    }
}

/// <summary>A write-ahead log on a full disk: a real 256 KiB tmpfs (the tests run as root, as CI does).</summary>
public sealed class WriteAheadLogDiskFullTests : IDisposable
{
    private readonly TempDir _dir = new();
    private readonly string _mount;

    public WriteAheadLogDiskFullTests()
    {
        _mount = _dir.Sub("small");
        Directory.CreateDirectory(_mount);
        Tmpfs.Mount(_mount, "256k");
    }

    public void Dispose()
    {
        Tmpfs.Unmount(_mount);
        _dir.Dispose();
    }

    [Fact]
    public async Task A_full_disk_refuses_new_records_clearly_keeps_every_acknowledged_one_and_takes_records_again_when_space_returns()
    {
        var payload = new byte[1000];
        new Random(5).NextBytes(payload);
        var acknowledged = new List<long>();
        IOException? refusal = null;
        using (var wal = new LocalWriteAheadLog(Path.Combine(_mount, "wal"), segmentBytes: 64 * 1024))
        {
            for (int i = 0; i < 1_000 && refusal is null; i++)
            {
                try
                {
                    acknowledged.Add(await wal.AppendAsync(payload));
                }
                catch (IOException e)
                {
                    refusal = e;
                }
            }

            Assert.NotNull(refusal);
            Assert.Contains("no space left", refusal!.Message);
            Assert.Contains("Nothing acknowledged is lost", refusal.Message);
            Assert.InRange(acknowledged.Count, 100, 260);
            Assert.Equal(acknowledged.Count, wal.DurableEnd);
            // Still full: refused again, the log unchanged.
            await Assert.ThrowsAsync<IOException>(() => wal.AppendAsync(payload));
            Assert.Equal(acknowledged.Count, wal.DurableEnd);

            // Space returns: the log takes records again, numbered on from the last acknowledged one.
            Tmpfs.Resize(_mount, "2m");
            Assert.Equal(acknowledged.Count, await wal.AppendAsync(payload));
        }

        using var reopened = new LocalWriteAheadLog(Path.Combine(_mount, "wal"), segmentBytes: 64 * 1024);
        Assert.Equal(acknowledged.Count + 1, reopened.DurableEnd);
        int read = 0;
        reopened.Read(0, reopened.DurableEnd, (_, bytes) =>
        {
            Assert.True(bytes.Span.SequenceEqual(payload));
            read++;
        });
        Assert.Equal(acknowledged.Count + 1, read);
    }
}
