using PipelineDsl.Graph;

namespace PipelineDsl.Runtime.Tests;

public class SchemaCompatibilityTests
{
    [Theory]
    [InlineData("{0:int64,1:string}", "{0:int64,1:string}")]
    [InlineData("{0:int64,1:string}", "{0:int64}")]                      // a field removed: skipped on read
    [InlineData("{0:int64}", "{0:int64,7:array<string>}")]               // a field added: starts at its default
    [InlineData("{0:int32}", "{0:int64}")]                               // widened integer
    [InlineData("{0:uint16}", "{0:int32}")]                              // unsigned into a wider signed
    [InlineData("{0:float32}", "{0:float64}")]
    [InlineData("{0:int64}", "{0:nullable<int64>}")]                     // made nullable
    [InlineData("{0:enum:int32}", "{0:int32}")]                          // an enum read as its underlying type
    [InlineData("{0:{0:int32,1:string}}", "{0:{0:int64,2:bool}}")]       // nested contracts, recursively
    [InlineData("map<string,{0:int32}>", "map<string,{0:int32,1:guid}>")]
    [InlineData("int64", "int64")]
    public void Compatible(string written, string reading) => Assert.Null(SchemaCompatibility.Check(written, reading));

    [Theory]
    [InlineData("{0:int64}", "{0:string}", "field 0 was int64 and is now string")]
    [InlineData("{0:int64}", "{0:int32}", "field 0 was int64 and is now int32")]             // narrowed
    [InlineData("{0:int64}", "{0:uint64}", "field 0 was int64 and is now uint64")]
    [InlineData("{0:nullable<int64>}", "{0:int64}", "field 0 was nullable<int64> and is now int64")]
    [InlineData("{0:{0:int32}}", "{0:{0:string}}", "field 0.0 was int32 and is now string")]
    [InlineData("{0:array<int32>}", "{0:map<int32,int32>}", "field 0 was array<int32> and is now map<int32,int32>")]
    [InlineData("{0:int32}", "int32", "the value was {0:int32} and is now int32")]
    // A type argument that changed names both whole types: a dictionary of longs that became a dictionary of contracts.
    [InlineData("{1:map<string,int64>}", "{1:map<string,{0:int64,1:string}>}", "field 1 was map<string,int64> and is now map<string,{0:int64,1:string}>")]
    [InlineData("{1:array<{0:int32}>}", "{1:array<{0:string}>}", "field 1 was array<{0:int32}> and is now array<{0:string}> (field 0 was int32 and is now string)")]
    public void Incompatible(string written, string reading, string reason) => Assert.Equal(reason, SchemaCompatibility.Check(written, reading));

    [Fact]
    public void A_malformed_schema_is_reported_not_trusted() =>
        Assert.StartsWith("the schema cannot be compared", SchemaCompatibility.Check("{0:int64", "{0:int64}"));
}
