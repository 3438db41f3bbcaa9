using System.Text;
using System.Text.Json.Nodes;
using Peft.Testing;

namespace Peft.Transformers.Tests.Training.Callbacks;

/// <summary>
/// <see cref="JsonlLoggerCallback"/> after a crash mid-write: a log_history.jsonl that ends inside a line is repaired
/// (cut back to its last newline) before the first new record, so a resumed run's records start on their own line and
/// every line of the file parses; an intact file is only appended to.
/// </summary>
public sealed class JsonlLoggerCallbackTests
{
    private static void Log(JsonlLoggerCallback cb, string dir, double loss, int step) =>
        cb.OnLog(new TrainingArguments { OutputDir = dir }, new TrainerState(), new TrainerControl(),
            new Dictionary<string, double> { ["loss"] = loss, ["step"] = step });

    private static List<JsonObject> Records(string path) =>
        File.ReadAllLines(path).Select(l => JsonNode.Parse(l)!.AsObject()).ToList();

    [Theory]
    [InlineData("{\"loss\":2.5,\"step\":1}\n{\"loss\":2.25,\"step\":2}\n{\"loss\":2.1,\"st", 2)]   // cut inside the third record
    [InlineData("{\"loss\":2.5,\"step\":1}\n{\"loss\":2.25,\"step\":2}", 1)]                    // a record without its newline
    [InlineData("{\"loss\":2.5,\"st", 0)]                                                        // no complete line at all
    [InlineData("{\"loss\":2.5,\"step\":1}\n{\"loss\":2.25,\"step\":2}\n", 2)]                  // intact: kept as is
    public void A_cut_last_line_is_repaired_and_new_records_parse(string existing, int kept)
    {
        using var dir = new TempDir();
        string path = dir.File(JsonlLoggerCallback.FileName);
        File.WriteAllBytes(path, Encoding.UTF8.GetBytes(existing));
        var cb = new JsonlLoggerCallback();
        Log(cb, dir.Path, 1.5, 3);
        Log(cb, dir.Path, 1.25, 4);

        var records = Records(path);
        Assert.Equal(kept + 2, records.Count);
        Assert.Equal([1.5, 1.25], records.Skip(kept).Select(r => r["loss"]!.GetValue<double>()));
        Assert.Equal(Enumerable.Range(1, kept).Concat([3, 4]), records.Select(r => r["step"]!.GetValue<int>()));
        Assert.EndsWith("\n", File.ReadAllText(path), StringComparison.Ordinal);
    }

    [Fact]
    public void Records_are_appended_one_line_each_and_an_intact_file_is_never_cut()
    {
        using var dir = new TempDir();
        var first = new JsonlLoggerCallback();
        for (int i = 0; i < 3; i++) Log(first, dir.Path, 3 - i, i);
        var second = new JsonlLoggerCallback();   // a resumed run: a new callback on the same file
        Log(second, dir.Path, 0.5, 3);
        Assert.Equal([0, 1, 2, 3], Records(dir.File(JsonlLoggerCallback.FileName)).Select(r => r["step"]!.GetValue<int>()));
    }
}
