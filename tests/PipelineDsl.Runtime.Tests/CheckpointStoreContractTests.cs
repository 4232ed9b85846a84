using PipelineDsl.Checkpointing;

namespace PipelineDsl.Runtime.Tests;

public sealed class LocalDirectoryCheckpointStoreContract : CheckpointStoreContract
{
    private readonly TempDir _dir = new();

    public LocalDirectoryCheckpointStoreContract() => Store = new LocalDirectoryCheckpointStore(_dir.Sub("checkpoint"));

    protected override ICheckpointStore Store { get; }

    public override void Dispose() => _dir.Dispose();
}

public sealed class InMemoryCheckpointStoreContract : CheckpointStoreContract
{
    protected override ICheckpointStore Store { get; } = new InMemoryCheckpointStore();

    protected override bool RecordsLockHolder => false;
}
