"""digitd.forms: templates read and refused with exact one-line messages, comb cells,
value checks, load_forms, and the config key `forms` through the real CLI."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from digitd.config import load_config
from digitd.errors import ConfigError
from digitd.forms import Field, FormError, Template, check_value, dump_template, load_forms, load_template

GOOD = """\
form: exam-cover
page: {width_mm: 200, height_mm: 100}
fields:
  - name: student_id
    box_mm: [20, 40, 80, 12]
    digits: 8
    pattern: "[0-9]{8}"
    required: true
  - name: score
    box: [0.6, 0.1, 0.2, 0.05]
"""

# A valid one-field template, to break one thing at a time.
BASE = """\
form: f
fields:
  - name: a
    box_mm: [10, 10, 50, 20]
"""


def write(folder: Path, text: str, name: str = "exam.yaml") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def form_error(path: Path) -> str:
    with pytest.raises(FormError) as info:
        load_template(path)
    message = str(info.value)
    assert "\n" not in message
    return message


# --- valid templates -------------------------------------------------------------------


def test_a_template_in_mm_and_fractions(tmp_path):
    path = write(tmp_path, GOOD)
    assert load_template(path) == Template(
        name="exam-cover", size=(200.0, 100.0), path=str(path),
        fields=(Field("student_id", (20.0, 40.0, 80.0, 12.0), 8, "[0-9]{8}", True),
                # 0.6 x 200, 0.1 x 100, 0.2 x 200, 0.05 x 100: exact, not 5.000000000000001
                Field("score", (120.0, 10.0, 40.0, 5.0), None, None, False)))


def test_fractions_are_converted_exactly(tmp_path):
    path = write(tmp_path, "form: f\nfields:\n  - name: a\n    box: [0.1, 0.05, 0.3, 0.07]\n")
    template = load_template(path)
    assert template.size == (210.0, 297.0)  # A4 when page is left out
    # naive float products give 21.000000000000004, 14.850000000000001, 62.99999999999999, 20.79
    assert template.fields[0].box == (21.0, 14.85, 63.0, 20.79)


def test_defaults_and_numbers_are_floats(tmp_path):
    template = load_template(write(tmp_path, BASE))
    field = template.fields[0]
    assert (field.digits, field.pattern, field.required) == (None, None, False)
    assert all(type(v) is float for v in (*field.box, *template.size))


def test_boxes_may_touch_and_fill_the_page(tmp_path):
    text = ("form: f\npage: {width_mm: 100, height_mm: 50}\nfields:\n"
            "  - {name: a, box_mm: [0, 0, 50, 50]}\n  - {name: b, box_mm: [50, 0, 50, 50]}\n"
            "  - {name: c, box: [0, 0, 0.5, 0.5]}\n")
    # a and c overlap: everything else here touches only
    assert form_error(write(tmp_path, text)) == (
        f"{tmp_path}/exam.yaml: fields[2].box: field 'c' overlaps field 'a' (fields[0])")
    template = load_template(write(tmp_path, text.rsplit("  - {name: c", 1)[0]))
    assert [f.box for f in template.fields] == [(0.0, 0.0, 50.0, 50.0), (50.0, 0.0, 50.0, 50.0)]


def test_the_sample_template_in_docs_loads(repo_root):
    path = repo_root / "docs" / "forms" / "exam-cover.yaml"
    template = load_template(path)
    assert template.name == "exam-cover" and template.size == (210.0, 297.0)
    assert [(f.name, f.box, f.digits, f.pattern, f.required) for f in template.fields] == [
        ("student_id", (20.0, 40.0, 80.0, 12.0), 8, "[0-9]{8}", True),
        ("room", (130.0, 40.0, 40.0, 12.0), None, "[0-9]{1,3}", False),
        ("score", (126.0, 59.4, 42.0, 14.85), None, None, True),
    ]


def test_the_readme_shows_the_sample_template(repo_root):
    readme = (repo_root / "README.md").read_text(encoding="utf-8")
    section = readme.split("### Forms\n", 1)[1].split("\n## ", 1)[0]
    shown = re.search(r"```yaml\n(.*?)```", section, re.S).group(1)
    sample = (repo_root / "docs" / "forms" / "exam-cover.yaml").read_text(encoding="utf-8")
    assert yaml.safe_load(shown) == yaml.safe_load(sample)


# --- refusals: one line naming the file and the key ---------------------------------------


def field_text(extra: str = "", box: str = "box_mm: [10, 10, 50, 20]") -> str:
    return f"form: f\nfields:\n  - name: a\n    {box}\n{extra}"


REFUSED = [
    # not a template at all
    ("- a\n- b\n", "top level must be a mapping of keys to values, got a list of 2"),
    ("just text\n", "top level must be a mapping of keys to values, got 'just text'"),
    ("", "top level must be a mapping of keys to values, got null"),
    # unknown keys, at every level
    (BASE + "title: Exam\n", "unknown key 'title'"),
    (BASE.replace("fields:", "field:"), "unknown key 'field' (did you mean 'fields'?)"),
    (BASE + "page: {width_mm: 210, height: 297}\n",
     "page: unknown key 'height' (did you mean 'height_mm'?)"),
    (field_text("    digit: 3\n"), "fields[0]: unknown key 'digit' (did you mean 'digits'?)"),
    (field_text("    3: x\n"), "fields[0]: unknown key 3"),
    # missing keys
    ("fields: []\n", "missing key 'form'"),
    ("form: f\n", "missing key 'fields'"),
    ("form: f\nfields:\n  - box_mm: [1, 1, 5, 5]\n", "fields[0]: missing key 'name'"),
    ("form: f\nfields:\n  - name: a\n",
     "fields[0]: give its box as box_mm (mm) or box (fractions of the page), one is required"),
    (field_text("    box: [0, 0, 0.1, 0.1]\n"),
     "fields[0]: give its box as box_mm (mm) or box (fractions of the page), not both"),
    (BASE + "page: {width_mm: 210}\n", "page: missing key 'height_mm'"),
    # wrong types
    (BASE.replace("form: f", "form: exam cover"),
     "form: expected a name (letters, digits, - and _), got 'exam cover'"),
    (BASE.replace("form: f", "form: 12.5"),
     "form: expected a name (letters, digits, - and _), got 12.5"),
    (BASE + "page: A4\n", "page: expected a mapping of keys to values, got 'A4'"),
    (BASE + "page: {width_mm: '210', height_mm: 297}\n",
     "page.width_mm: expected a number > 0, got '210'"),
    ("form: f\nfields: {a: 1}\n", "fields: expected a list of fields, got a mapping"),
    ("form: f\nfields:\n  - a\n", "fields[0]: expected a mapping of keys to values, got 'a'"),
    (field_text().replace("name: a", "name: student id"),
     "fields[0].name: expected a column name (letters, digits and _), got 'student id'"),
    (field_text().replace("name: a", "name: 7"),
     "fields[0].name: expected a column name (letters, digits and _), got 7"),
    (field_text(box="box_mm: [10, 10, 50]"),
     "fields[0].box_mm: expected [x, y, w, h], 4 numbers in mm, got a list of 3"),
    (field_text(box="box_mm: [10, 10, 50, '20']"),
     "fields[0].box_mm: expected [x, y, w, h], 4 numbers in mm, got a list of 4"),
    (field_text(box="box: 0.5"),
     "fields[0].box: expected [x, y, w, h], 4 fractions of the page, got 0.5"),
    (field_text(box="box_mm: [10, 10, .nan, 20]"),
     "fields[0].box_mm: expected [x, y, w, h], 4 numbers in mm, got a list of 4"),
    (field_text(box="box_mm: [10, true, 50, 20]"),
     "fields[0].box_mm: expected [x, y, w, h], 4 numbers in mm, got a list of 4"),
    (field_text("    digits: three\n"), "fields[0].digits: expected an integer >= 1, got 'three'"),
    (field_text("    digits: 2.0\n"), "fields[0].digits: expected an integer >= 1, got 2"),
    (field_text("    digits: true\n"), "fields[0].digits: expected an integer >= 1, got true"),
    (field_text("    pattern: 12\n"), "fields[0].pattern: expected a regular expression, got 12"),
    (field_text("    required: 'yes'\n"), "fields[0].required: expected true or false, got 'yes'"),
    (field_text("    required: 1\n"), "fields[0].required: expected true or false, got 1"),
    # non-positive sizes, digits < 1
    (BASE + "page: {width_mm: 0, height_mm: 297}\n", "page.width_mm: expected a number > 0, got 0"),
    (BASE + "page: {width_mm: 210, height_mm: -297}\n",
     "page.height_mm: expected a number > 0, got -297"),
    (field_text(box="box_mm: [10, 10, 0, 20]"), "fields[0].box_mm: width w must be > 0, got 0"),
    (field_text(box="box_mm: [10, 10, 5, -2.5]"),
     "fields[0].box_mm: height h must be > 0, got -2.5"),
    (field_text(box="box: [0.1, 0.1, 0.2, 0]"), "fields[0].box: height h must be > 0, got 0"),
    (field_text("    digits: 0\n"), "fields[0].digits: expected an integer >= 1, got 0"),
    (field_text("    digits: -8\n"), "fields[0].digits: expected an integer >= 1, got -8"),
    # off the page
    (field_text(box="box_mm: [135, 40, 80, 12]"),
     "fields[0].box_mm: off the page (x + w = 215 mm > 210 mm)"),
    (field_text(box="box_mm: [20, 290.5, 80, 12]"),
     "fields[0].box_mm: off the page (y + h = 302.5 mm > 297 mm)"),
    (field_text(box="box_mm: [-1, 40, 80, 12]"), "fields[0].box_mm: off the page (x = -1 mm < 0)"),
    (field_text(box="box_mm: [1, -0.5, 80, 12]"),
     "fields[0].box_mm: off the page (y = -0.5 mm < 0)"),
    (field_text(box="box: [0.6, 0.1, 0.5, 0.1]"), "fields[0].box: off the page (x + w = 1.1 > 1)"),
    (field_text(box="box: [0.1, 0.7, 0.1, 0.31]"),
     "fields[0].box: off the page (y + h = 1.01 > 1)"),
    (field_text(box="box: [0.1, -0.1, 0.1, 0.1]"), "fields[0].box: off the page (y = -0.1 < 0)"),
    ("form: f\npage: {width_mm: 100, height_mm: 100}\nfields:\n  - name: a\n"
     "    box_mm: [50, 10, 60, 20]\n", "fields[0].box_mm: off the page (x + w = 110 mm > 100 mm)"),
    # overlapping boxes name both fields
    (field_text("  - name: b\n    box_mm: [59.5, 29.5, 10, 10]\n"),
     "fields[1].box_mm: field 'b' overlaps field 'a' (fields[0])"),
    (field_text("  - name: b\n    box_mm: [100, 100, 10, 10]\n"
                "  - name: c\n    box: [0.4, 0.3, 0.2, 0.2]\n"),
     "fields[2].box: field 'c' overlaps field 'b' (fields[1])"),
    # duplicate names, reserved names
    (field_text("  - name: a\n    box_mm: [100, 100, 10, 10]\n"),
     "fields[1].name: 'a' is already the name of fields[0]"),
    (field_text().replace("name: a", "name: status"),
     "fields[0].name: 'status' is one of the forms CSV's own columns "
     "(file, page, status, confidence)"),
    # a bad regular expression
    (field_text("    pattern: '[0-9'\n"),
     "fields[0].pattern: not a valid regular expression: "
     "unterminated character set at position 0"),
    # an empty fields list
    ("form: f\nfields: []\n", "fields: empty; a form needs at least one field"),
    # not YAML
    ("form: f\nfields: [\n", "invalid YAML at line 3, column 1: expected the node content, "
                             "but found '<stream end>'"),
    ("form: f\nform: g\nfields: []\n", "key 'form' appears twice (lines 1 and 2)"),
]


@pytest.mark.parametrize(("text", "message"), REFUSED, ids=[m for _, m in REFUSED])
def test_a_bad_template_is_refused_naming_file_and_key(tmp_path, text, message):
    path = write(tmp_path / "forms", text)
    assert form_error(path) == f"{path}: {message}"


def test_the_file_is_named_as_given(tmp_path, monkeypatch):
    write(tmp_path / "forms", field_text(box="box_mm: [135, 40, 80, 12]"), "exam.yml")
    monkeypatch.chdir(tmp_path)
    assert form_error(Path("forms/exam.yml")) == (
        "forms/exam.yml: fields[0].box_mm: off the page (x + w = 215 mm > 210 mm)")


def test_unreadable_or_undecodable_files(tmp_path):
    assert form_error(tmp_path / "nope.yaml") == (
        f"{tmp_path}/nope.yaml: cannot read the template: no such file")
    path = tmp_path / "bytes.yaml"
    path.write_bytes(b"form: \xff\n")
    assert form_error(path) == f"{path}: not UTF-8 text (byte 6)"


def test_form_error_is_a_value_error():
    assert issubclass(FormError, ValueError)


# --- load_forms ----------------------------------------------------------------------------


def named(name: str, x: int = 10) -> str:
    return f"form: {name}\nfields:\n  - name: a\n    box_mm: [{x}, 10, 50, 20]\n"


def test_load_forms_reads_every_template_sorted_by_file_name(tmp_path):
    folder = tmp_path / "forms"
    write(folder, named("zeta"), "b.yml")
    write(folder, named("alpha"), "c.yaml")
    write(folder, named("mid"), "a.yaml")
    write(folder, "not: a template\n", "notes.txt")
    write(folder, "broken: [\n", ".hidden.yaml")
    (folder / "sub.yaml").mkdir()
    write(folder / "sub.yaml", named("nested"), "x.yaml")
    (folder / "sub").mkdir()
    write(folder / "sub", named("nested"), "y.yaml")
    templates = load_forms(folder)
    assert [(t.name, Path(t.path).name) for t in templates] == [
        ("mid", "a.yaml"), ("zeta", "b.yml"), ("alpha", "c.yaml")]


def test_load_forms_refuses_two_templates_of_one_name(tmp_path):
    folder = tmp_path / "forms"
    write(folder, named("exam"), "a.yaml")
    write(folder, named("other"), "b.yaml")
    write(folder, named("exam", 100), "c.yaml")
    with pytest.raises(FormError) as info:
        load_forms(folder)
    assert str(info.value) == (
        f"{folder}/c.yaml: form: 'exam' is already the name of {folder}/a.yaml")


def test_load_forms_names_the_bad_file(tmp_path):
    folder = tmp_path / "forms"
    write(folder, named("a"), "a.yaml")
    write(folder, named("b", 170), "b.yaml")
    with pytest.raises(FormError) as info:
        load_forms(folder)
    assert str(info.value) == (
        f"{folder}/b.yaml: fields[0].box_mm: off the page (x + w = 220 mm > 210 mm)")


@pytest.mark.parametrize("case", ["missing", "file", "empty"])
def test_load_forms_needs_a_folder_with_templates(tmp_path, case):
    folder = tmp_path / "forms"
    if case == "file":
        folder.write_text("x")
    elif case == "empty":
        write(folder, "x", "readme.txt")
    with pytest.raises(FormError) as info:
        load_forms(folder)
    assert str(info.value) == {
        "missing": f"{folder}: folder not found",
        "file": f"{folder}: not a folder",
        "empty": f"{folder}: no form templates (*.yaml, *.yml) in the folder",
    }[case]


# --- cells and values ------------------------------------------------------------------------


def test_a_comb_field_splits_into_equal_cells_left_to_right():
    field = Field("id", (20.0, 40.0, 80.0, 12.0), digits=4)
    assert field.cells() == [(20.0, 40.0, 20.0, 12.0), (40.0, 40.0, 20.0, 12.0),
                             (60.0, 40.0, 20.0, 12.0), (80.0, 40.0, 20.0, 12.0)]
    assert Field("one", (1.0, 2.0, 3.0, 4.0), digits=1).cells() == [(1.0, 2.0, 3.0, 4.0)]


def test_a_field_without_digits_is_one_cell():
    assert Field("score", (5.0, 6.0, 7.0, 8.0)).cells() == [(5.0, 6.0, 7.0, 8.0)]


STUDENT = Field("student_id", (0.0, 0.0, 80.0, 12.0), digits=8, pattern="[0-9]{8}", required=True)
ROOM = Field("room", (0.0, 0.0, 40.0, 12.0), pattern="[0-9]{1,3}")
ONE = Field("grade", (0.0, 0.0, 10.0, 10.0), digits=1)
FREE = Field("note", (0.0, 0.0, 10.0, 10.0))


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        (STUDENT, "12345678", ("ok", ())),
        (STUDENT, None, ("blank", ("required field is empty",))),
        (STUDENT, "", ("blank", ("required field is empty",))),
        (ROOM, None, ("blank", ())),
        (ROOM, "", ("blank", ())),
        (STUDENT, "1234567", ("uncertain", ("expected 8 digits, read 7",
                                            "does not match pattern [0-9]{8}"))),
        (STUDENT, "1234/5678", ("uncertain", ("does not match pattern [0-9]{8}",))),
        (ROOM, "1234", ("uncertain", ("does not match pattern [0-9]{1,3}",))),
        (ROOM, "12", ("ok", ())),
        (ROOM, "12a", ("uncertain", ("does not match pattern [0-9]{1,3}",))),  # the whole value
        (ONE, "42", ("uncertain", ("expected 1 digit, read 2",))),
        (ONE, "4", ("ok", ())),
        (FREE, "12/05/2026", ("ok", ())),
    ],
)
def test_check_value(field, value, expected):
    assert check_value(field, value) == expected


# --- the config key `forms` ---------------------------------------------------------------------


def make_config(folder: Path, text: str) -> Path:
    return write(folder, text, "config.yaml")


def test_config_loads_the_templates(tmp_path):
    write(tmp_path / "forms", GOOD, "exam.yaml")
    write(tmp_path / "forms", named("other"), "other.yaml")
    config = load_config(make_config(tmp_path, "forms: forms\n"))
    assert config.forms == tmp_path / "forms"
    assert [t.name for t in config.templates] == ["exam-cover", "other"]
    assert config.templates[0] == load_template(tmp_path / "forms" / "exam.yaml")
    assert load_config(make_config(tmp_path, "")).templates == ()


def test_config_refuses_a_bad_template(tmp_path):
    write(tmp_path / "forms", field_text(box="box_mm: [135, 40, 80, 12]"))
    config = make_config(tmp_path, "forms: forms\n")
    with pytest.raises(ConfigError) as info:
        load_config(config)
    assert info.value.exit_code == 2
    assert str(info.value) == (f"{config}: key 'forms': {tmp_path}/forms/exam.yaml: "
                               "fields[0].box_mm: off the page (x + w = 215 mm > 210 mm)")


def test_check_config_with_forms(run_digitd, tmp_path):
    write(tmp_path / "forms", GOOD)
    config = make_config(tmp_path, "forms: forms\n")
    result = run_digitd("check-config", "--config", config)
    assert result.returncode == 0, result.stderr
    assert yaml.safe_load(result.stdout)["forms"] == str(tmp_path / "forms")


def test_check_config_without_forms_prints_null(run_digitd, tmp_path):
    result = run_digitd("check-config", "--config", make_config(tmp_path, "forms:\n"))
    assert result.returncode == 0, result.stderr
    assert "\nforms: null\n" in result.stdout


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({"exam.yaml": field_text(box="box_mm: [135, 40, 80, 12]")},
         "{forms}/exam.yaml: fields[0].box_mm: off the page (x + w = 215 mm > 210 mm)"),
        ({"exam.yaml": field_text("  - name: b\n    box_mm: [20, 20, 10, 10]\n")},
         "{forms}/exam.yaml: fields[1].box_mm: field 'b' overlaps field 'a' (fields[0])"),
        ({"exam.yaml": field_text("    colour: red\n")},
         "{forms}/exam.yaml: fields[0]: unknown key 'colour'"),
        ({"a.yaml": named("exam"), "b.yaml": named("exam")},
         "{forms}/b.yaml: form: 'exam' is already the name of {forms}/a.yaml"),
        ({}, "{forms}: folder not found"),
    ],
    ids=["off-the-page", "overlap", "unknown-key", "two-of-one-name", "no-folder"],
)
def test_check_config_refuses_bad_forms(run_digitd, tmp_path, files, message):
    for name, text in files.items():
        write(tmp_path / "forms", text, name)
    config = make_config(tmp_path, "forms: forms\n")
    result = run_digitd("check-config", "--config", config)
    assert result.returncode == 2
    expected = message.format(forms=tmp_path / "forms")
    assert result.stderr == f"digitd: error: {config}: key 'forms': {expected}\n"
    assert result.stdout == ""


def test_dump_template_writes_what_load_template_reads(tmp_path):
    template = Template("exam-cover", (210.0, 297.0), (
        Field("student_id", (20.0, 40.5, 80.0, 12.0), digits=8, pattern=r"[0-9]{8}\d*", required=True),
        Field("note", (20.0, 100.0, 60.0, 10.25)),
    ), "")
    path = tmp_path / "exam.yaml"
    path.write_text(dump_template(template))
    assert load_template(path) == Template(template.name, template.size, template.fields, str(path))
