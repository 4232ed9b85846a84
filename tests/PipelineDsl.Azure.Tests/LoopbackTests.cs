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
        var sockets = ProcessSockets.Of(pid);
        Assert.Contains(sockets, s => s.IsTcp && s.LocalPort == _azurite.Port);
        ProcessSockets.AssertLoopbackOnly(sockets, "Azurite");
    }
}
