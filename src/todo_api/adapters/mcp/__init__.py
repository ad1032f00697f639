"""The MCP adapter: the use cases as Model Context Protocol tools, over streamable HTTP (`/mcp`) and stdio."""
