"""Print pyproject.toml's dependencies, with those of the extra named in argv[1] if any: installed
before the project's code is copied in, so a change to the code reuses the dependencies' layer."""

import sys
import tomllib

with open("pyproject.toml", "rb") as handle:
    project = tomllib.load(handle)["project"]
extra = project["optional-dependencies"][sys.argv[1]] if len(sys.argv) > 1 else []
print("\n".join(project["dependencies"] + extra))
