"""The HTML report, checked in headless Chromium as a person would use it."""

from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table

from deconfetti.cli import main
from deconfetti.outputs import write_outputs, write_report
from deconfetti.simulate import simulate_cube, write_products
from deconfetti.workflow import read_scan

from chromium import browser

SCREENSHOTS = Path(__file__).parent / "screenshots"


@pytest.fixture(scope="module")
def driver():
    driver = browser()
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def example_report(example_scan, tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    write_outputs(example_scan, out)
    return write_report(example_scan, out, top=3)


def rows(driver):
    from selenium.webdriver.common.by import By

    return [[td.text for td in tr.find_elements(By.TAG_NAME, "td")]
            for tr in driver.find_elements(By.CSS_SELECTOR, "#candidates tbody tr")]


def test_report_loads_sorts_and_filters(driver, example_report, example_scan):
    from selenium.webdriver.common.by import By

    driver.get(example_report.as_uri())
    assert driver.find_element(By.TAG_NAME, "body").get_attribute("data-ready") == "true"
    errors = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
    assert errors == []
    table = example_scan.candidates
    shown = rows(driver)
    assert len(shown) == len(table)
    assert [int(r[0]) for r in shown] == list(table["id"])  # by unsupported_snr, highest first
    SCREENSHOTS.mkdir(exist_ok=True)
    driver.save_screenshot(str(SCREENSHOTS / "report.png"))
    headings = {th.text: th for th in driver.find_elements(By.CSS_SELECTOR, "#candidates th")}
    chan = list(headings).index("chan")
    headings["chan"].click()
    channels = [int(r[chan]) for r in rows(driver)]
    assert channels == sorted(channels)
    headings["chan"].click()
    assert [int(r[chan]) for r in rows(driver)] == sorted(channels, reverse=True)
    for box in driver.find_elements(By.CSS_SELECTOR, ".cls-filter"):
        if box.get_attribute("value") != "confetti":
            box.click()
    assert {r[1] for r in rows(driver)} == {"confetti"}
    assert len(rows(driver)) == int(np.sum(table["classification"] == "confetti"))
    for box in driver.find_elements(By.CSS_SELECTOR, ".cls-filter"):
        if not box.is_selected():
            box.click()
    driver.find_element(By.ID, "search").send_keys("real")
    assert {r[1] for r in rows(driver)} == {"real"}
    # the top candidates link to their figures, which are embedded
    driver.get(example_report.as_uri())
    link = driver.find_element(By.CSS_SELECTOR, "#candidates tbody a")
    section = driver.find_element(By.ID, link.get_attribute("href").split("#")[1])
    images = section.find_elements(By.TAG_NAME, "img")
    assert len(images) == 5 and all(i.get_attribute("src").startswith("data:image/png")
                                    for i in images)


def test_report_is_self_contained(example_report):
    html = example_report.read_text()
    assert "http://" not in html and "https://" not in html
    assert "<link" not in html and 'src="data:image/png;base64,' in html


def test_untrusted_text_is_escaped(driver, tmp_path):
    sim = simulate_cube(nchan=6, ny=48, nx=48, seed=2, lines=[(3, 24, 24, 0.02)])
    prefix = write_products(sim, tmp_path / "my <b>cube</b>", "x")
    for path in prefix.parent.glob("x.*.fits"):
        fits.setval(path, "OBJECT", value="<script>alert(1)</script>")
    out = tmp_path / "scan"
    assert main(["scan", str(prefix), "--out", str(out), "--report", "--figures", "0",
                 "--top", "1", "-q"]) == 0
    html = (out / "report.html").read_text()
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "my &lt;b&gt;cube&lt;/b&gt;" in html
    driver.get((out / "report.html").as_uri())  # an alert would fail the next call
    assert "<script>alert(1)</script>" in driver.find_element("tag name", "body").text


def test_report_command_from_a_scan_folder(example_scan, tmp_path, capsys):
    write_outputs(example_scan, tmp_path)
    again = read_scan(tmp_path)
    assert len(again.candidates) == len(example_scan.candidates)
    np.testing.assert_allclose(again.rms, example_scan.rms)
    assert main(["report", str(tmp_path), "--top", "1"]) == 0
    assert (tmp_path / "report.html").exists()
    assert main(["report", str(tmp_path)]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert main(["report", str(tmp_path / "nothing")]) == 2


def test_survey_page_in_a_browser(driver, sim, tmp_path):
    """scan-many's survey.html: one row per cube with its counts, status and worst
    channel, and the cube's name links its report, which opens."""
    from selenium.webdriver.common.by import By

    write_products(sim, tmp_path / "f1", "cube", fmt="fits")
    write_products(sim, tmp_path / "f2", "line", fmt="casa")
    assert main(["scan-many", str(tmp_path / "f1"), str(tmp_path / "f2"), "--survey",
                 str(tmp_path / "s"), "--report", "--figures", "1", "--top", "1", "-q"]) == 0
    driver.get((tmp_path / "s" / "survey.html").as_uri())
    assert [e for e in driver.get_log("browser") if e["level"] == "SEVERE"] == []
    assert driver.find_element(By.TAG_NAME, "h1").text == "deconfetti survey: 2 cube(s)"
    cells = [[td.text for td in tr.find_elements(By.TAG_NAME, "td")]
             for tr in driver.find_elements(By.CSS_SELECTOR, "#survey tbody tr")]
    assert len(cells) == 2 and all(row[1] == "ok" and row[2] == "10" for row in cells)
    assert [row[3] for row in cells] == ["2", "2"]  # confetti
    link = driver.find_element(By.CSS_SELECTOR, "#survey tbody tr a")
    link.click()
    assert driver.title.startswith("deconfetti report:")
    assert driver.find_element(By.TAG_NAME, "body").get_attribute("data-ready") == "true"


def test_figures_go_to_confetti_first_and_to_a_diverged_channel_last():
    from deconfetti.report import figure_rows

    classes = ["diverged", "diverged", "noise", "confetti", "uncertain", "confetti", "real"]
    catalog = Table({"id": np.arange(1, 8), "classification": classes})
    assert list(figure_rows(catalog, 4)["id"]) == [4, 6, 5, 7]
    assert list(figure_rows(catalog, 10)["id"]) == [4, 6, 5, 7, 3, 1, 2]
    assert len(figure_rows(catalog[:0], 5)) == 0
