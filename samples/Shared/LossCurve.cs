using ScottPlot;

namespace Peft.Samples;

/// <summary>Draws the training (and evaluation) loss of a Trainer's <c>LogHistory</c> as a PNG with ScottPlot.</summary>
public static class LossCurve
{
    /// <summary>
    /// Writes <paramref name="path"/> (PNG, 800×450): one line per series, x = global step. Each series is a name and
    /// the LogHistory whose <c>loss</c> (and <c>eval_loss</c>, drawn as a second line) entries are plotted.
    /// </summary>
    public static void Write(string path, string title, params (string Name, IReadOnlyList<IReadOnlyDictionary<string, double>> History)[] series)
    {
        var plot = new Plot();
        foreach (var (name, history) in series)
        {
            Add(plot, history, "loss", series.Length == 1 ? "train loss" : name);
            Add(plot, history, "eval_loss", (series.Length == 1 ? "" : name + " ") + "eval loss");
        }
        plot.Title(title);
        plot.XLabel("step");
        plot.YLabel("loss");
        plot.ShowLegend(Alignment.UpperRight);
        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(path))!);
        string tmp = path + ".tmp.png";
        plot.SavePng(tmp, 800, 450);
        File.Move(tmp, path, overwrite: true);
    }

    private static void Add(Plot plot, IReadOnlyList<IReadOnlyDictionary<string, double>> history, string key, string label)
    {
        var points = history.Where(e => e.ContainsKey(key) && e.ContainsKey("step")).ToList();
        if (points.Count == 0) return;
        var line = plot.Add.Scatter(points.Select(e => e["step"]).ToArray(), points.Select(e => e[key]).ToArray());
        line.LegendText = label;
    }
}
