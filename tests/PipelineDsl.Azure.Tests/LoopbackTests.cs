using System.Globalization;
using PipelineDsl.Azure.Testing;

namespace PipelineDsl.Azure.Tests;

/// <summary>
/// Azurite, as the tests start it, listens on 127.0.0.1 only and talks to nothing but loopback: without
/// <c>--disableTelemetry</c> it would contact a cloud metadata address. Read from the kernel's socket tables
/// (<c>/proc/net/tcp*</c>, <c>/proc/net/udp*</c>) for the server's own sockets, as <c>ss -p</c> does.
/// </summary>
public sealed class LoopbackTests : IClassFixture<AzuriteFixture>
{
    private readonly AzuriteServer _azurite;

    public LoopbackTests(AzuriteFixture azurite) => _azurite = azurite.Server;

    [Fact]
    public async Task Azurite_listens_on_loopback_and_contacts_nothing_else()
    {
        // Some traffic first, so that anything it would open on the way is open.
        var store = AzureBlobCheckpointStore.FromConnectionString(_azurite.ConnectionString, "loopback", "job");
        using (store.AcquireLock("loopback test"))
        {
            await store.WriteAsync("offsets/0000000000000000001", new byte[] { 1 }, durable: true, default);
            Assert.NotNull(await store.ReadAsync("offsets/0000000000000000001", default));
        }

        int pid = _azurite.ProcessId ?? throw new InvalidOperationException("Azurite is not running");
        var inodes = Directory.GetFiles($"/proc/{pid}/fd")
            .Select(fd => { try { return File.ResolveLinkTarget(fd, returnFinalTarget: false)?.Name ?? File.ReadAllText(fd); } catch (Exception e) when (e is IOException or UnauthorizedAccessException) { return ""; } })
            .Select(target => target.StartsWith("socket:[", StringComparison.Ordinal) ? target[8..^1] : null)
            .OfType<string>().ToHashSet();
        Assert.NotEmpty(inodes);

        var sockets = new List<(string Table, string Local, string Remote)>();
        foreach (var table in new[] { "tcp", "tcp6", "udp", "udp6" })
        {
            foreach (var line in File.ReadLines($"/proc/{pid}/net/{table}").Skip(1))
            {
                var fields = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
                if (fields.Length > 9 && inodes.Contains(fields[9])) sockets.Add((table, fields[1], fields[2]));
            }
        }

        Assert.Contains(sockets, s => s.Table.StartsWith("tcp", StringComparison.Ordinal) && Port(s.Local) == _azurite.Port);
        foreach (var (table, local, remote) in sockets)
        {
            Assert.True(IsLoopback(local), $"Azurite has a {table} socket bound to {local}, not to loopback");
            Assert.True(IsLoopbackOrUnset(remote), $"Azurite has a {table} socket to {remote}, not loopback");
        }
    }

    private static int Port(string address) => int.Parse(address[(address.IndexOf(':') + 1)..], NumberStyles.HexNumber, CultureInfo.InvariantCulture);

    /// <summary>A remote end that is loopback, or all zeros (a listening socket has none).</summary>
    private static bool IsLoopbackOrUnset(string address) => address[..address.IndexOf(':')].All(c => c == '0') || IsLoopback(address);

    /// <summary>127.0.0.0/8, ::1 or ::ffff:127.x.x.x (0.0.0.0, all interfaces, is not).</summary>
    private static bool IsLoopback(string address)
    {
        string host = address[..address.IndexOf(':')];
        if (host.Length == 8) return host.EndsWith("7F", StringComparison.Ordinal); // little-endian IPv4: 127 is the last byte
        return host == "00000000000000000000000001000000" || (host.StartsWith("0000000000000000FFFF0000", StringComparison.Ordinal) && host.EndsWith("7F", StringComparison.Ordinal));
    }
}
