using PipelineDsl.CompilerServices;
using PipelineDsl.Serialization;
using PipelineDsl.State;
using Xunit.Abstractions;

namespace PipelineDsl.Runtime.Tests;

/// <summary>The session store's contract: deltas applied in order rebuild exactly the sessions a snapshot holds, and sessions fire in end order.</summary>
public class SessionStoreTests
{
    private readonly ITestOutputHelper _log;

    public SessionStoreTests(ITestOutputHelper log) => _log = log;

    private static SessionStore<string, long> NewStore() => new("sessions", MessagePackFormatters.String!, MessagePackFormatters.Int64);

    private static string Contents(SessionStore<string, long> store)
    {
        var w = new MessagePackWriter(256);
        store.WriteSnapshot(w);
        var copy = NewStore();
        var r = new MessagePackReader(w.WrittenSpan);
        copy.RestoreSnapshot(ref r);
        var lines = new List<string>();
        var requeue = new List<(string, long)>();
        while (copy.TryTakeDue(long.MaxValue, out var key, out var sessions))
            lines.Add(key + ":" + string.Join(",", sessions!.Select(s => $"[{s.Start},{s.End})={s.Value}")));
        lines.Sort(StringComparer.Ordinal);
        return string.Join(" ", lines);
    }

    [Fact]
    public void Deltas_applied_in_order_rebuild_exactly_the_sessions_a_snapshot_holds()
    {
        var random = TestRandom.Create(20261201, _log);
        var live = NewStore();
        var rebuilt = NewStore();
        for (int batch = 0; batch < 40; batch++)
        {
            live.BeginBatch();
            for (int op = 0; op < 10; op++)
            {
                string key = "k" + random.Next(5);
                var sessions = live.SessionsOf(key);
                long start = batch * 100 + random.Next(100);
                sessions.Add(new Session<long> { Start = start, End = start + 50, Value = random.Next(1000) });
                sessions.Sort((a, b) => a.Start.CompareTo(b.Start));
                live.Changed(key);
                live.DueAt(key, start + 50);
            }

            // Fire everything that ended before this batch's window, as a watermark would.
            var requeue = new List<(string, long)>();
            while (live.TryTakeDue(batch * 100 - 100, out var key, out var sessions))
            {
                sessions!.RemoveAll(s => s.End <= batch * 100 - 100);
                live.Changed(key);
                live.Settle(key, sessions, requeue);
            }

            live.Requeue(requeue);
            var delta = new MessagePackWriter(256);
            live.WriteDelta(delta);
            var r = new MessagePackReader(delta.WrittenSpan);
            Assert.False(SessionStore<string, long>.IsWholeState(ref r));
            rebuilt.ApplyDelta(ref r);
            Assert.Equal(Contents(live), Contents(rebuilt));
        }

        Assert.NotEqual("", Contents(live));
    }

    [Fact]
    public void Keys_come_due_in_the_order_of_their_earliest_session_end()
    {
        var store = NewStore();
        store.BeginBatch();
        foreach (var (key, end) in new[] { ("late", 300L), ("early", 100L), ("middle", 200L) })
        {
            store.SessionsOf(key).Add(new Session<long> { Start = end - 10, End = end, Value = 1 });
            store.DueAt(key, end);
        }

        var due = new List<string>();
        while (store.TryTakeDue(250, out var key, out _)) due.Add(key);
        Assert.Equal(new[] { "early", "middle" }, due);
    }
}

/// <summary>dump-state reads each layout with the dumper beside its writer.</summary>
public class StateDumpTests
{
    [Fact]
    public void Sessions_are_dumped_one_line_per_key_with_their_sessions()
    {
        var store = new SessionStore<string, long>("sessions", MessagePackFormatters.String!, MessagePackFormatters.Int64);
        store.BeginBatch();
        store.SessionsOf("a").Add(new Session<long> { Start = 0, End = 50, Value = 7 });
        store.SessionsOf("a").Add(new Session<long> { Start = 100, End = 150, Value = 8 });
        store.SessionsOf("b").Add(new Session<long> { Start = 10, End = 60, Value = 9 });
        var w = new MessagePackWriter(64);
        store.WriteSnapshot(w);
        var output = new StringWriter();
        StateDump.WriteJsonLines("session-window", w.WrittenSpan, new Dictionary<long, string>(), int.MaxValue, output);
        var lines = output.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => System.Text.Json.JsonDocument.Parse(l).RootElement).ToList();
        Assert.Equal(2, lines.Count);
        var a = lines.Single(l => l.GetProperty("key").GetString() == "a");
        Assert.Equal(new[] { (0L, 50L, 7L), (100L, 150L, 8L) },
            a.GetProperty("sessions").EnumerateArray().Select(s => (s.GetProperty("start").GetInt64(), s.GetProperty("end").GetInt64(), s.GetProperty("value").GetInt64())));
    }

    [Fact]
    public void A_batch_windows_panes_are_dumped_with_their_batches()
    {
        var w = new MessagePackWriter(64);
        w.WriteArrayHeader(1);
        w.WriteArrayHeader(2);
        w.Write("k");
        w.WriteArrayHeader(2);
        foreach (var (batch, value) in new[] { (4L, 10L), (5L, 11L) })
        {
            w.WriteArrayHeader(2);
            w.Write(batch);
            w.Write(value);
        }

        var output = new StringWriter();
        StateDump.WriteJsonLines("window", w.WrittenSpan, new Dictionary<long, string>(), int.MaxValue, output);
        Assert.Equal("{\"key\":\"k\",\"panes\":[{\"batch\":4,\"value\":10},{\"batch\":5,\"value\":11}]}", output.ToString().Trim());
    }

    [Fact]
    public void A_limit_cuts_the_lines_and_an_unknown_layout_is_written_as_stored()
    {
        var w = new MessagePackWriter(64);
        w.WriteArrayHeader(3);
        for (int i = 0; i < 3; i++) w.Write((long)i);
        var output = new StringWriter();
        StateDump.WriteJsonLines("a-newer-kind", w.WrittenSpan, new Dictionary<long, string>(), 2, output);
        Assert.Equal(new[] { "{\"kind\":\"a-newer-kind\",\"entry\":0}", "{\"kind\":\"a-newer-kind\",\"entry\":1}" }, output.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries));
    }
}
