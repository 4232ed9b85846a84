using System.Globalization;

namespace PipelineDsl.Tests.Shared;

/// <summary>
/// The sockets a process holds, read from the kernel's tables (<c>/proc/PID/net/tcp*</c>, <c>udp*</c>, matched by the
/// inodes of its open file descriptors), as <c>ss -p</c> does: how tests check that a server they start binds to
/// loopback only and contacts nothing else.
/// </summary>
public static class ProcessSockets
{
    public sealed record Socket(string Table, string Local, string Remote)
    {
        public int LocalPort => Port(Local);

        public bool IsTcp => Table.StartsWith("tcp", StringComparison.Ordinal);
    }

    public static List<Socket> Of(int pid)
    {
        var inodes = Directory.GetFiles($"/proc/{pid}/fd")
            .Select(fd => { try { return File.ResolveLinkTarget(fd, returnFinalTarget: false)?.Name ?? ""; } catch (Exception e) when (e is IOException or UnauthorizedAccessException) { return ""; } })
            .Select(target => target.StartsWith("socket:[", StringComparison.Ordinal) ? target[8..^1] : null)
            .OfType<string>().ToHashSet();
        var sockets = new List<Socket>();
        foreach (var table in new[] { "tcp", "tcp6", "udp", "udp6" })
        {
            foreach (var line in File.ReadLines($"/proc/{pid}/net/{table}").Skip(1))
            {
                var fields = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
                if (fields.Length > 9 && inodes.Contains(fields[9])) sockets.Add(new Socket(table, fields[1], fields[2]));
            }
        }

        return sockets;
    }

    /// <summary>Fails naming the first socket of <paramref name="what"/> bound to, or connected to, anything but loopback.</summary>
    public static void AssertLoopbackOnly(IEnumerable<Socket> sockets, string what)
    {
        foreach (var (table, local, remote) in sockets)
        {
            Assert.True(IsLoopback(local), $"{what} has a {table} socket bound to {local}, not to loopback");
            Assert.True(IsLoopbackOrUnset(remote), $"{what} has a {table} socket to {remote}, not loopback");
        }
    }

    private static int Port(string address) => int.Parse(address[(address.IndexOf(':') + 1)..], NumberStyles.HexNumber, CultureInfo.InvariantCulture);

    /// <summary>A remote end that is loopback, or all zeros (a listening socket has none).</summary>
    private static bool IsLoopbackOrUnset(string address) => address[..address.IndexOf(':')].All(c => c == '0') || IsLoopback(address);

    /// <summary>127.0.0.0/8, ::1 or ::ffff:127.x.x.x (0.0.0.0, all interfaces, is not).</summary>
    public static bool IsLoopback(string address)
    {
        string host = address[..address.IndexOf(':')];
        if (host.Length == 8) return host.EndsWith("7F", StringComparison.Ordinal); // little-endian IPv4: 127 is the last byte
        return host == "00000000000000000000000001000000" || (host.StartsWith("0000000000000000FFFF0000", StringComparison.Ordinal) && host.EndsWith("7F", StringComparison.Ordinal));
    }
}
