using Peft.Datasets;
using Peft.Testing;

namespace Peft.Datasets.Tests.Loading;

/// <summary>
/// data_files under a data_dir cannot leave it; a dataset folder cannot link out of itself; exporting over a symlink
/// replaces the link and never writes through it.
/// </summary>
public sealed class DataFilesPathTests
{
    [Theory]
    [InlineData("../outside.csv")]
    [InlineData("/etc/passwd")]
    [InlineData("sub/../../outside.csv")]
    public void Data_files_that_leave_data_dir_are_refused_before_reading(string file)
    {
        using var dir = new TempDir();
        var e = Assert.Throws<ArgumentException>(() =>
            DatasetLoader.LoadDataset("csv", file, new LoadDatasetOptions { DataDir = dir.Path }));
        Assert.Contains("data_files", e.Message);
    }

    [Fact]
    public void Data_files_inside_data_dir_load_and_a_symlink_out_is_refused()
    {
        using var dir = new TempDir();
        using var outside = new TempDir();
        File.WriteAllText(dir.File("train.csv"), "a,b\n1,x\n");
        File.WriteAllText(outside.File("secret.csv"), "a,b\n2,y\n");
        var ds = DatasetLoader.LoadDataset("csv", "train.csv", new LoadDatasetOptions { DataDir = dir.Path })["train"];
        Assert.Equal(1, ds.NumRows);
        File.CreateSymbolicLink(dir.File("link.csv"), outside.File("secret.csv"));
        var e = Assert.Throws<ArgumentException>(() => DatasetLoader.LoadDataset("csv", "link.csv", new LoadDatasetOptions { DataDir = dir.Path }));
        Assert.Contains("outside", e.Message);
        Assert.Throws<ArgumentException>(() => DatasetLoader.LoadDataset("csv", "*.csv", new LoadDatasetOptions { DataDir = dir.Path }));
    }

    [Fact]
    public void A_dataset_folder_with_a_file_linked_from_outside_is_refused()
    {
        using var dir = new TempDir();
        using var outside = new TempDir();
        File.WriteAllText(dir.File("train.csv"), "a\n1\n");
        File.WriteAllText(outside.File("test.csv"), "a\n2\n");
        File.CreateSymbolicLink(dir.File("test.csv"), outside.File("test.csv"));
        var e = Assert.Throws<ArgumentException>(() => DatasetLoader.LoadDataset(dir.Path));
        Assert.Contains("test.csv", e.Message);
    }

    [Fact]
    public void Exporting_over_a_symlink_to_an_outside_file_replaces_the_link_and_leaves_the_file_alone()
    {
        using var dir = new TempDir();
        using var outside = new TempDir();
        var ds = Dataset.FromRows([new Dictionary<string, object?> { ["a"] = 1L, ["b"] = "x" }]);
        foreach (var (name, export) in new (string, Action<string>)[] { ("d.jsonl", ds.ToJson), ("d.csv", p => ds.ToCsv(p)), ("d.parquet", ds.ToParquet) })
        {
            File.WriteAllText(outside.File(name), "precious");
            File.CreateSymbolicLink(dir.File(name), outside.File(name));
            export(dir.File(name));
            Assert.Equal("precious", File.ReadAllText(outside.File(name)));
            Assert.Null(new FileInfo(dir.File(name)).LinkTarget);
        }
        Assert.Equal(1, DatasetLoader.LoadDataset("parquet", dir.File("d.parquet"))["train"].NumRows);
    }
}
