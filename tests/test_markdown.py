from pixyz_zoo.markdown import markdown_cell, markdown_table


def test_table_formats_floats_none_and_text():
    table = markdown_table(["model", "ELBO", "n"], [["vae", -91.23456, 3], ["jmvae", None, ""]], digits=2)
    assert table.splitlines() == [
        "| model | ELBO | n |",
        "|---|---|---|",
        "| vae | -91.23 | 3 |",
        "| jmvae | - |  |",
    ]


def test_cell_escapes_bars_so_the_columns_stay():
    cell = markdown_cell("E_{q(z|x)}[log p(x|z)]")
    assert cell == "E_{q(z\\|x)}[log p(x\\|z)]"
    row = markdown_table(["term"], [[cell]]).splitlines()[2]
    assert row.replace("\\|", "").count("|") == 2
