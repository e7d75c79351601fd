from controlplane.cli import build_parser


def test_cli_lists_config_command() -> None:
    assert "config" in build_parser().format_help()
