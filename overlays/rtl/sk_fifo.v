// sk_fifo: synchronous first-word-fall-through FIFO (block-RAM friendly: registered read)
`default_nettype none
`timescale 1ns / 1ps

module sk_fifo #(
    parameter WIDTH       = 8,   // bits per entry (>= 1)
    parameter DEPTH       = 16,  // entries held in memory; power of two, >= 2
    parameter AFULL_SLACK = 4    // afull rises when fewer than this many memory slots are free
) (
    input  wire             clk,
    input  wire             rst,        // synchronous, active high: empties the FIFO

    // input: an entry moves when s_valid && s_ready
    input  wire [WIDTH-1:0] s_data,
    input  wire             s_valid,
    output wire             s_ready,
    output wire             s_afull,    // producers that push without looking at s_ready watch this

    // output: m_data is valid while m_valid; it is consumed when m_valid && m_ready
    output wire [WIDTH-1:0] m_data,
    output wire             m_valid,
    input  wire             m_ready,

    output wire [$clog2(DEPTH):0] count // entries in memory (not counting the output register)
);

localparam AW = $clog2(DEPTH);

initial begin
    if (DEPTH < 2 || (1 << AW) != DEPTH) begin
        $error("sk_fifo: DEPTH must be a power of two >= 2 (%m)");
        $finish;
    end
end

reg [WIDTH-1:0] mem [0:DEPTH-1];
reg [AW:0] wr_ptr_reg = 0, rd_ptr_reg = 0;
reg [WIDTH-1:0] out_data_reg = 0;
reg out_valid_reg = 1'b0;

wire [AW:0] used = wr_ptr_reg - rd_ptr_reg;
wire mem_empty = (used == 0);
// fetch the next entry into the output register when it is empty or being consumed
wire fetch = !mem_empty && (!out_valid_reg || m_ready);

assign s_ready = (used != DEPTH);
assign s_afull = (used > DEPTH - AFULL_SLACK);
assign m_data  = out_data_reg;
assign m_valid = out_valid_reg;
assign count   = used;

always @(posedge clk) begin
    if (s_valid && s_ready) begin
        mem[wr_ptr_reg[AW-1:0]] <= s_data;
    end
    if (fetch) begin
        out_data_reg <= mem[rd_ptr_reg[AW-1:0]];
    end
end

always @(posedge clk) begin
    if (s_valid && s_ready) begin
        wr_ptr_reg <= wr_ptr_reg + 1;
    end
    if (fetch) begin
        rd_ptr_reg <= rd_ptr_reg + 1;
        out_valid_reg <= 1'b1;
    end else if (m_ready) begin
        out_valid_reg <= 1'b0;
    end

    if (rst) begin
        wr_ptr_reg <= 0;
        rd_ptr_reg <= 0;
        out_valid_reg <= 1'b0;
    end
end

endmodule

`resetall
