from brushwork.cli import entry

entry()
