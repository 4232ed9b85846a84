namespace PipelineDsl.Tests.Shared;

/// <summary>A small real tmpfs, for disk-full tests (mounting needs root, as CI and these machines have).</summary>
public static class Tmpfs
{
    /// <summary>Mounts a tmpfs of <paramref name="size"/> (for example <c>4m</c>) on the existing directory <paramref name="directory"/>.</summary>
    public static void Mount(string directory, string size) => Run("mount", "-t", "tmpfs", "-o", "size=" + size, "tmpfs", directory);

    /// <summary>Gives a mounted tmpfs a new size (space returning to a full disk).</summary>
    public static void Resize(string directory, string size) => Run("mount", "-o", "remount,size=" + size, directory);

    /// <summary>Unmounts it.</summary>
    public static void Unmount(string directory) => Run("umount", directory);

    private static void Run(string command, params string[] args)
    {
        var start = new System.Diagnostics.ProcessStartInfo(command) { RedirectStandardError = true };
        foreach (string a in args) start.ArgumentList.Add(a);
        using var process = System.Diagnostics.Process.Start(start)!;
        string error = process.StandardError.ReadToEnd();
        process.WaitForExit();
        if (process.ExitCode != 0) throw new InvalidOperationException($"{command} {string.Join(' ', args)} failed ({error.Trim()}): the disk-full tests need root to mount a small tmpfs.");
    }
}
