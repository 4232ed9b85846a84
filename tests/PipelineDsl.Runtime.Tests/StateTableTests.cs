using PipelineDsl.State;
using Xunit.Abstractions;

namespace PipelineDsl.Runtime.Tests;

/// <summary>
/// The keyed state's hash table against a <see cref="Dictionary{TKey, TValue}"/> driven by the same random
/// operations: same contents after every batch, slot indices stable while a key lives (deltas read slots back by
/// index), a removed slot never handed out again within its batch, and chains that hold many keys of one hash.
/// </summary>
public class StateTableTests
{
    private readonly ITestOutputHelper _log;

    public StateTableTests(ITestOutputHelper log) => _log = log;

    /// <summary>A key whose hash is chosen by the test, to force long chains and equal hashes.</summary>
    private sealed record Key(int Id, int Hash)
    {
        public override int GetHashCode() => Hash;

        public bool Equals(Key? other) => other is not null && other.Id == Id;
    }

    [Theory]
    [InlineData(1000, 2000)] // distinct hashes mostly
    [InlineData(1000, 7)] // every chain long: 7 hash values for up to 1000 keys
    public void Matches_a_dictionary_through_adds_removes_and_growth(int keySpace, int hashSpace)
    {
        var random = TestRandom.Create(20261202, _log);
        var table = new StateTable<Key, long>(null);
        var expected = new Dictionary<Key, long>();
        var indexOf = new Dictionary<Key, int>();
        for (int batch = 0; batch < 60; batch++)
        {
            table.ReleaseRemoved();
            var removedThisBatch = new HashSet<int>();
            for (int op = 0; op < 200; op++)
            {
                int id = random.Next(keySpace);
                var key = new Key(id, id % hashSpace);
                int hash = table.HashOf(key);
                if (random.Next(4) == 0)
                {
                    int found = table.Find(key, hash);
                    Assert.Equal(expected.ContainsKey(key), found >= 0);
                    if (found < 0) continue;
                    Assert.Equal(indexOf[key], found);
                    table.RemoveAt(found);
                    removedThisBatch.Add(found);
                    expected.Remove(key);
                    indexOf.Remove(key);
                }
                else
                {
                    ref var slot = ref table.GetOrAdd(key, hash, out bool existed, out int index);
                    Assert.Equal(expected.ContainsKey(key), existed);
                    if (existed) Assert.Equal(indexOf[key], index); // stable while the key lives
                    else Assert.DoesNotContain(index, removedThisBatch); // not reused within the batch
                    slot.Value = batch * 1000L + op;
                    expected[key] = slot.Value;
                    indexOf[key] = index;
                }
            }

            Assert.Equal(expected.Count, table.Count);
            var live = new Dictionary<Key, long>();
            foreach (ref var slot in table.Slots)
            {
                if (slot.IsLive) live.Add(slot.Key, slot.Value);
            }

            Assert.Equal(expected.OrderBy(p => p.Key.Id), live.OrderBy(p => p.Key.Id));
        }
    }

    [Fact]
    public void Clear_empties_the_table_and_it_fills_again()
    {
        var table = new StateTable<string, int>(null);
        for (int i = 0; i < 100; i++) table.GetOrAdd("k" + i, table.HashOf("k" + i), out _, out _).Value = i;
        table.Clear();
        Assert.Equal(0, table.Count);
        Assert.Equal(-1, table.Find("k5", table.HashOf("k5")));
        ref var slot = ref table.GetOrAdd("k5", table.HashOf("k5"), out bool existed, out _);
        Assert.False(existed);
        Assert.Equal(0, slot.Value);
    }
}
